"""Grammar-scored recognition: the command language used in recognition, not only after it.

Free decoding (greedy Whisper) writes what it hears; a mishearing such as "burcup videos" for
"perk up the ears" then reaches the parser, which cannot recover it. Here the candidates the
grammar allows (its canonical commands) are scored by Whisper's decoder on the same audio, as
log P(text | audio, prompt), and the best one replaces a free transcript that the parser cannot
read, when the audio supports it well enough. A transcript the parser reads is kept as heard
(explicit coordinates, amounts and multi-part commands stay free-form).

`score_texts` is the fast path: the prompt is run once, its keys and values are shared by every
candidate, and only the candidates' own positions are projected to the vocabulary.
`score_texts_reference` runs Whisper's own decoder on each whole sequence; the tests hold the
two equal.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class GrammarSettings:
    # Candidates scored: the grammar's spoken forms closest in spelling to the free transcript
    # (about 1,000 in all for the face rules; 32 cost about 0.2 s on two cores).
    max_candidates: int = 32
    # A candidate must average at least this log-probability per token (the free transcripts of
    # spoken commands average above -1). Measured with benchmarks/spoken_commands.py on 240 clips:
    # at -2.0 no choice was wrong and no non-command became a command; at -2.5 two were wrong.
    min_avg_logprob: float = -2.0
    # The grammar-restricted beam search (decode_in_grammar): its width, and how many of its
    # likeliest commands join the candidates (0: no search, only the spelling's closest).
    beam: int = 8
    beam_best: int = 4
    # The search also finds up to this many commands said as one, joined by "and".
    beam_parts: int = 2
    # The search is skipped when a candidate close in spelling already averages at least this
    # log-probability per token (None: always search). Measured with benchmarks/spoken_commands.py
    # (clean and 10 dB SNR, its own set and --held-out): at -1.0 as many commands are understood
    # as when always searching, and the median at 10 dB falls from 0.73 s to 0.65 s.
    search_below: float | None = -1.0
    # Candidates are compared by total log-probability plus this many nats per token. Every
    # token costs probability, so on noisy audio the raw total favours the shortest commands
    # ("smile", "undo") over the longer one that was said; the bonus evens that out ("save" no
    # longer beats "save the picture" on "save the big shot").
    length_bonus: float = 1.5
    # Where Whisper was itself unsure of its free transcript (its words average below
    # `unsure_below` per token on the audio, or it wrote nothing), the grammar's likeliest command
    # needs only `unsure_min_avg_logprob`: noise that garbles a command leaves the decoder unsure
    # of every reading, while a clear sentence that is no command is heard with confidence and
    # keeps the stricter floor. Measured with benchmarks/spoken_commands.py (clean, 10 dB SNR and
    # reverb, its own set and --held-out, after the noise filter): of 240 commands in each
    # condition, 6 more understood at 10 dB (86.7 -> 90.0% on each set), 2 more clean and 2 more
    # reverberant; of 240 non-command clips in all, 4 more made commands (22 -> 26; most of the
    # 26 are held-out sentences the parser itself reads as commands, such as "close the window").
    unsure_below: float | None = -1.0
    unsure_min_avg_logprob: float = -3.0


@dataclass(frozen=True)
class Scored:
    text: str
    total: float  # log P(text tokens and end of text | audio, prompt), nats
    tokens: int

    @property
    def average(self) -> float:
        return self.total / max(self.tokens, 1)


@dataclass(frozen=True)
class Reading:
    """What the parser makes of a transcript."""

    understood: bool  # an edit or a control word, no error
    as_heard: bool  # understood without correcting any word
    text: str  # the words it read (after its corrections)


@dataclass
class GrammarChoice:
    text: str  # what is passed on to the parser
    source: str  # "free": the free transcript kept; "grammar": a scored command replaced it
    free_text: str
    scored: list[Scored] = field(default_factory=list)


def _split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    n, length, d = x.shape
    return x.view(n, length, n_head, d // n_head).transpose(1, 2)


def _attend(mha: Any, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    import torch.nn.functional as F

    q = _split_heads(mha.query(x), mha.n_head)
    out = F.scaled_dot_product_attention(q, _split_heads(k, mha.n_head), _split_heads(v, mha.n_head), attn_mask=mask)
    return mha.out(out.transpose(1, 2).flatten(2))


@dataclass
class Prompt:
    """The decoder run once over the prompt: per block, its self-attention keys and values and the
    audio's cross-attention keys and values; and the hidden state that predicts the first token."""

    cache: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    last: torch.Tensor  # [1, 1, d]
    start: int  # prompt length


def run_prompt(model: Any, initial: Sequence[int], audio_features: torch.Tensor) -> Prompt:
    import torch

    dec = model.decoder
    start = len(initial)
    xa = audio_features.to(dec.positional_embedding.dtype)
    x = dec.token_embedding(torch.tensor([list(initial)])) + dec.positional_embedding[:start]
    causal = torch.full((start, start), float("-inf")).triu_(1)
    cache = []
    for block in dec.blocks:
        h = block.attn_ln(x)
        k, v = block.attn.key(h), block.attn.value(h)
        ck, cv = block.cross_attn.key(xa), block.cross_attn.value(xa)
        x = x + _attend(block.attn, h, k, v, causal)
        x = x + _attend(block.cross_attn, block.cross_attn_ln(x), ck, cv, None)
        x = x + block.mlp(block.mlp_ln(x))
        cache.append((k, v, ck, cv))
    return Prompt(cache, dec.ln(x[:, -1:]), start)


def _hidden(model: Any, prompt: Prompt, tokens: torch.Tensor) -> torch.Tensor:
    """The decoder's final hidden states after the prompt and tokens[:, :j], for j = 0 .. length:
    [n, length + 1, d]; position j predicts token j. Each position sees the whole prompt and its
    own row's earlier positions."""
    import torch

    dec = model.decoder
    n, length = tokens.shape
    start = prompt.start
    if start + length > dec.positional_embedding.shape[0]:
        raise ValueError("prompt and candidate are longer than the decoder's context")
    if length == 0:
        return prompt.last.expand(n, -1, -1)
    y = dec.token_embedding(tokens) + dec.positional_embedding[start : start + length]
    mask = torch.cat([torch.zeros(length, start), torch.full((length, length), float("-inf")).triu_(1)], dim=1)
    for block, (k, v, ck, cv) in zip(dec.blocks, prompt.cache, strict=True):
        h = block.attn_ln(y)
        keys = torch.cat([k.expand(n, -1, -1), block.attn.key(h)], dim=1)
        values = torch.cat([v.expand(n, -1, -1), block.attn.value(h)], dim=1)
        y = y + _attend(block.attn, h, keys, values, mask)
        y = y + _attend(block.cross_attn, block.cross_attn_ln(y), ck.expand(n, -1, -1), cv.expand(n, -1, -1), None)
        y = y + block.mlp(block.mlp_ln(y))
    return torch.cat([prompt.last.expand(n, -1, -1), dec.ln(y)], dim=1)


def _logprobs(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """log P(token) over the vocabulary from hidden states. The projection onto the 51,864-token
    vocabulary is most of the scoring's cost, so callers pass only the positions they need."""
    return (hidden @ model.decoder.token_embedding.weight.T).float().log_softmax(-1)


def score_texts(
    model: Any,
    tokenizer: Any,
    initial: Sequence[int],
    audio_features: torch.Tensor,
    texts: Sequence[str],
    prompt: Prompt | None = None,
) -> list[Scored]:
    """log P(" " + text, end of text | audio, initial tokens) for each text, batched. `prompt`
    (run_prompt's result for the same audio and initial tokens) saves running the prompt again."""
    import torch

    if not texts:
        return []
    seqs = [tokenizer.encode(" " + t.strip()) + [tokenizer.eot] for t in texts]
    n, length = len(seqs), max(len(s) for s in seqs)
    with torch.inference_mode():
        prompt = prompt or run_prompt(model, initial, audio_features)
        tokens = torch.full((n, length), tokenizer.eot, dtype=torch.long)
        for i, s in enumerate(seqs):
            tokens[i, : len(s)] = torch.tensor(s)
        lengths = torch.tensor([len(s) for s in seqs])
        keep = torch.arange(length)[None, :] < lengths[:, None]  # a text's own positions, not the padding
        logp = _logprobs(model, _hidden(model, prompt, tokens)[:, :-1][keep])
        picked = logp.gather(-1, tokens[keep][:, None])[:, 0]
        totals = torch.zeros(n, dtype=picked.dtype).index_add_(0, keep.nonzero()[:, 0], picked)
    return [Scored(t, float(total), len(s)) for t, total, s in zip(texts, totals, seqs, strict=True)]


PrefixTree = dict[tuple[int, ...], dict[int, "str | None"]]  # prefix -> next token -> the text it ends, if any


def prefix_tree(tokenizer: Any, texts: Sequence[str]) -> PrefixTree:
    """The texts' token sequences (" " + text, end of text) as a prefix tree. Tokenising the
    grammar's thousand spoken forms takes about 0.1 s, so a caller builds this once."""
    tree: PrefixTree = {}
    for text in texts:  # a text is named as given (a key of the caller's forms); its words are scored
        seq = tokenizer.encode(" " + text.strip()) + [tokenizer.eot]
        for j, token in enumerate(seq[:-1]):
            tree.setdefault(tuple(seq[:j]), {})[token] = None
        tree.setdefault(tuple(seq[:-1]), {}).setdefault(tokenizer.eot, text)  # the first of equal texts
    return tree


def decode_in_grammar(
    model: Any,
    initial: Sequence[int],
    audio_features: torch.Tensor,
    tree: PrefixTree,
    beam: int = 8,
    best: int = 4,
    prompt: Prompt | None = None,
    join: int | None = None,
    parts: int = 1,
) -> list[Scored]:
    """Beam search whose every step is restricted to a prefix tree of texts: the `best` likeliest
    of the texts on the audio, found without scoring each of them. With a `join` token (" and")
    and `parts` > 1, a text may also be up to `parts` of the tree's texts joined by it ("raise
    the ears and close the eyes"), named "<text> and <text>".

    Where `closest` picks candidates by their spelling's likeness to a free transcript, and so
    finds nothing when noise turns the transcript into unrelated words, this lets the audio pick
    them. A finished text's score is exact (the same as score_texts); the search stops once the
    `best` finished texts all score above every unfinished prefix, since a prefix's score can
    only fall as it grows."""
    import torch

    if not tree or best < 1:
        return []
    finished: list[Scored] = []
    # A live hypothesis: every token so far, its place in the tree, the texts it has finished, its score.
    live: list[tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...], float]] = [((), (), (), 0.0)]
    with torch.inference_mode():
        prompt = prompt or run_prompt(model, initial, audio_features)
        while live:
            tokens = torch.tensor([list(h[0]) for h in live], dtype=torch.long).reshape(len(live), -1)
            logp = _logprobs(model, _hidden(model, prompt, tokens)[:, -1])
            grown: list[tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...], float]] = []
            for (seq, node, done, total), row in zip(live, logp.tolist(), strict=True):
                for token, ends in tree[node].items():
                    if ends is None:
                        grown.append((seq + (token,), node + (token,), done, total + row[token]))
                        continue
                    finished.append(Scored(" and ".join(done + (ends,)), total + row[token], len(seq) + 1))
                    if join is not None and len(done) + 1 < parts:
                        grown.append((seq + (join,), (), done + (ends,), total + row[join]))
            live = sorted(grown, key=lambda h: -h[3])[:beam]
            finished = sorted(finished, key=lambda s: -s.total)[:best]
            if len(finished) == best and live and live[0][3] < finished[-1].total:
                break
    return finished


def score_texts_reference(
    model: Any, tokenizer: Any, initial: Sequence[int], audio_features: torch.Tensor, texts: Sequence[str]
) -> list[Scored]:
    """The same scores from Whisper's own decoder, one whole sequence at a time."""
    import torch

    out = []
    with torch.inference_mode():
        for text in texts:
            seq = tokenizer.encode(" " + text.strip()) + [tokenizer.eot]
            tokens = torch.tensor([list(initial) + seq])
            logp = model.decoder(tokens[:, :-1], audio_features).float().log_softmax(-1)[0]
            positions = torch.arange(len(initial) - 1, len(initial) - 1 + len(seq))
            out.append(Scored(text, float(logp[positions, torch.tensor(seq)].sum()), len(seq)))
    return out


def closest(free_text: str, phrases: Iterable[str], limit: int) -> list[str]:
    """The grammar's phrases (or a dict's spoken forms, its keys) nearest the free transcript in
    spelling (letters, not words: a mishearing keeps sounds, and so letters, more often than words)."""
    said = " ".join(free_text.lower().split())
    ranked = sorted(phrases, key=lambda p: -difflib.SequenceMatcher(None, said, p).ratio())
    return list(dict.fromkeys(ranked))[:limit]


def candidates(free_text: str, reading: Reading, phrases: Iterable[str], settings: GrammarSettings) -> list[str]:
    """The grammar's readings to score: its closest spoken forms, and the parser's own correction."""
    near = closest(free_text, phrases, settings.max_candidates)
    return list(dict.fromkeys(near + ([reading.text] if reading.understood and reading.text else [])))


def joined_plausibly(text: str, forms: dict[str, str], read: Callable[[str], Reading]) -> bool:
    """Whether a text of commands joined by "and" names different commands that the parser reads
    together (a single command always does). A decoder likes to repeat itself: "turn the head
    right and turn the head right" is its loop, not what was said."""
    if " and " not in text:
        return True
    parts = [forms.get(p, p) for p in text.split(" and ")]
    return len(set(parts)) == len(parts) and read(" and ".join(parts)).understood


def unsure(heard: Scored | None, settings: GrammarSettings) -> bool:
    """Whether Whisper was unsure of its free transcript (`heard`: that transcript scored on the
    audio, None when it wrote nothing), so that a grammar reading may win on weaker support."""
    return settings.unsure_below is not None and (heard is None or heard.average < settings.unsure_below)


def choose(
    free_text: str, reading: Reading, scored: Sequence[Scored], settings: GrammarSettings, heard_unsure: bool = False
) -> GrammarChoice:
    """Of the grammar's readings, the one the audio makes most likely, if it is likely enough
    (`unsure_min_avg_logprob` where Whisper was unsure of what it heard, see `unsure`); else the
    free transcript (which the parser then reads, or refuses, as usual)."""
    if reading.as_heard or not scored:
        return GrammarChoice(free_text, "free", free_text, list(scored))
    best = max(scored, key=lambda s: s.total + settings.length_bonus * s.tokens)
    floor = min(settings.min_avg_logprob, settings.unsure_min_avg_logprob) if heard_unsure else settings.min_avg_logprob
    if best.average < floor or (reading.understood and best.text == reading.text):
        return GrammarChoice(free_text, "free", free_text, list(scored))
    return GrammarChoice(best.text, "grammar", free_text, list(scored))


def canonical(choice: GrammarChoice, forms: dict[str, str]) -> GrammarChoice:
    """The choice with each spoken form (of one, or of several joined by "and") replaced by the
    canonical command it stands for."""
    if choice.source != "grammar":
        return choice
    text = forms.get(choice.text) or " and ".join(forms.get(p, p) for p in choice.text.split(" and "))
    return GrammarChoice(text, choice.source, choice.free_text, choice.scored)


def parser_reading(parser: Any) -> Callable[[str], Reading]:
    """A `read` for Transcriber.transcribe_command from a voicedrag.language CommandParser."""

    def read(text: str) -> Reading:
        result = parser.parse(text)
        understood = bool(result.edits or result.control) and not result.error
        plain = " ".join("".join(c for c in text.lower() if c.isalnum() or c in " ,").replace(",", " ").split())
        said = " ".join(result.corrected.replace(",", " ").split())
        # As heard: no word corrected, none read past ("break up the left ear" is read as "up the
        # left ear" without "break"), and no paraphrase guessed; anything less is checked on the audio.
        as_heard = understood and not (result.corrections or result.ignored or result.matched) and said == plain
        return Reading(understood, as_heard, _without(result.corrected, result.ignored))

    return read


def _without(text: str, skipped: Sequence[str]) -> str:
    """The text less the words the parser read past, each once: what it actually read. Scored on
    the audio, the reading must not keep a misheard word it ignored ("burak up the ears" is the
    free transcript itself, and as such always the likeliest; "up the ears" is not)."""
    words = text.split()
    for item in skipped:
        run = item.lower().split()
        low = [w.lower().strip(",.") for w in words]
        for i in range(len(low) - len(run) + 1):
            if run and low[i : i + len(run)] == run:
                del words[i : i + len(run)]
                break
    return " ".join(words)


def command_phrases(parser: Any) -> dict[str, str]:
    """Spoken forms of the grammar's commands, each mapped to its canonical phrasing
    (CommandParser.templates): the lexicon's other verbs for an action ("perk up the ears" for
    "raise the ears"), directions without "to the", "both" for a pair, the lexicon's phrases for a
    control word. The form is what is scored on the audio; the canonical phrase is what the parser
    is then given, so a choice always reads as one of the grammar's commands."""
    from voicedrag.language import lexicon as lx

    forms: dict[str, str] = {}
    verbs: dict[tuple[str, str | None], set[str]] = {}
    for word, action in lx.VERBS.items():
        if word == action or not word.endswith(("s", "ed", "ing")):
            verbs.setdefault((action, None), set()).add(word)
    for rule in parser.rules.rules:  # a rule's own verbs ("perk" for the ears)
        verbs.setdefault((rule.action, rule.part), set()).update(rule.verbs)
    particles: dict[str, list[str]] = {}  # "perk" -> ["perk up", "prick up"]; "undo" -> ["go back", ...]
    for phrase, word in lx.PHRASES.items():
        particles.setdefault(word, []).append(phrase)
    for phrase, meaning in parser.templates:
        forms.setdefault(phrase, phrase)
        if isinstance(meaning, str):  # a control word: the word, and the lexicon's phrases for it
            for form in [meaning, *particles.get(meaning, [])]:
                forms.setdefault(form, phrase)
            continue
        first, _, rest = phrase.partition(" ")
        words = verbs.get((meaning.action, None), set()) | verbs.get((meaning.action, meaning.part), set())
        words |= {p for w in list(words) for p in particles.get(w, [])}
        spoken = (
            [phrase] + [f"{v} {rest}".strip() for v in sorted(words) if v != first]
            if first in words | {meaning.action}
            else [phrase]
        )
        for form in spoken:
            for variant in (
                form,
                form.replace(" to the left", " left").replace(" to the right", " right"),
                form.replace(" the ears", " both ears").replace(" the eyes", " both eyes"),
            ):
                forms.setdefault(variant, phrase)
    return forms
