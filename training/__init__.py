"""The trainers of the shipped models (the face generator and the keypoint detector).

Run from a checkout (`python -m training.train_generator ...`); nothing in the application
imports them, and they are not installed with it.
"""
