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
import functools
import re
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
    # Explicit points are searched in a grammar of points (voicedrag.speech.points) where the free
    # transcript has them or sounds like it, with this beam; False: never.
    points: bool = True
    point_beam: int = 8
    point_best: int = 8
    # Modifiers of the free transcript (amounts, sides, "by N pixels": `modifiers`) are added to
    # this many of the closest candidates that lack them, since the grammar's commands carry none
    # (not tuned: the command said is among the first few when the words around it were heard).
    modifier_candidates: int = 12
    # A modifier word is heard with confidence when each of its tokens has at least this
    # log-probability on the audio (-1.0: p >= 0.37; the free transcript's tokens are Whisper's
    # own greedy choices, so a word it doubted falls below this).
    confident_word: float = -1.0
    # A candidate without a modifier heard with confidence wins over the best candidate that keeps
    # it only by this much (nats, after the length bonus; 3: twenty times likelier): "turn the head
    # to the left" must not beat the "slightly" that was heard just because the shorter text is
    # likelier. On the 325 modifier clips measured (51 amounts, sides and distances and 14 more
    # commands, five voices of espeak-ng and Flite) it decided nothing, 267 right with it at 0, 3
    # or 1000: the candidates that carry the modifiers win on the audio by themselves.
    drop_margin: float = 3.0


@dataclass(frozen=True)
class Scored:
    text: str
    total: float  # log P(text tokens and end of text | audio, prompt), nats
    tokens: int
    # log P of each token (" " + text, then end of text), where the scorer kept them (score_texts):
    # how sure the audio is of each word, not only of the whole.
    token_logprobs: tuple[float, ...] = field(default=(), compare=False, repr=False)

    @property
    def average(self) -> float:
        return self.total / max(self.tokens, 1)


@dataclass(frozen=True)
class Reading:
    """What the parser makes of a transcript."""

    understood: bool  # an edit or a control word, no error
    as_heard: bool  # understood without correcting any word
    text: str  # the words it read (after its corrections)
    points: tuple[tuple[float, float], ...] = ()  # the explicit points it read (handles and targets), in order


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
    # `keep` is row-major, so each text's own tokens follow one another in `picked`.
    each = picked.split([len(s) for s in seqs])
    return [
        Scored(t, float(total), len(s), tuple(p.tolist()))
        for t, total, s, p in zip(texts, totals, seqs, each, strict=True)
    ]


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


@dataclass(frozen=True)
class WordGraph:
    """A grammar too large to list as texts (explicit points: every number in every slot), as a
    graph of words: from a state, each arc says a word (with its leading space; "," without one)
    and leads to another state; a text may end at a final state."""

    arcs: dict[int, tuple[tuple[str, int], ...]]
    finals: frozenset[int]
    start: int = 0


# Per token: (it continues a longer word, the states that a word ending with it leads to).
Branch = tuple[bool, tuple[int, ...]]


class GraphTokens:
    """A WordGraph's words as tokens: per state, the prefix tree of its words' token sequences,
    built on first use (a number slot has a thousand words, most states a handful)."""

    def __init__(self, graph: WordGraph, tokenizer: Any) -> None:
        self.graph = graph
        self.tokenizer = tokenizer
        self._trees: dict[int, dict[tuple[int, ...], dict[int, Branch]]] = {}

    def branches(self, state: int, prefix: tuple[int, ...]) -> dict[int, Branch]:
        tree = self._trees.get(state)
        if tree is None:
            tree = {}
            for word, target in self.graph.arcs.get(state, ()):
                seq = self.tokenizer.encode(word)
                for j, token in enumerate(seq):
                    node = tree.setdefault(tuple(seq[:j]), {})
                    more, ends = node.get(token, (False, ()))
                    if j == len(seq) - 1:
                        node[token] = (more, ends if target in ends else (*ends, target))
                    else:
                        node[token] = (True, ends)
            self._trees[state] = tree
        return tree.get(prefix, {})

    def accepts(self, text: str) -> bool:
        """Whether the graph says `text` (spelled as " " + text), token by token."""
        states: set[tuple[int, tuple[int, ...]]] = {(self.graph.start, ())}
        for token in self.tokenizer.encode(" " + text.strip()):
            grown: set[tuple[int, tuple[int, ...]]] = set()
            for state, prefix in states:
                more, ends = self.branches(state, prefix).get(token, (False, ()))
                if more:
                    grown.add((state, (*prefix, token)))
                grown.update((target, ()) for target in ends)
            states = grown
        return any(not prefix and state in self.graph.finals for state, prefix in states)


def decode_in_graph(
    model: Any,
    initial: Sequence[int],
    audio_features: torch.Tensor,
    graph: GraphTokens,
    beam: int = 8,
    best: int = 4,
    prompt: Prompt | None = None,
    max_tokens: int = 40,
) -> list[Scored]:
    """Beam search whose every token is one the word graph allows next: the `best` likeliest of its
    texts on the audio (as decode_in_grammar, for a grammar given as a graph). Scores are exact."""
    import torch

    tokenizer = graph.tokenizer
    eot = tokenizer.eot
    finished: dict[str, Scored] = {}
    # A live hypothesis: its tokens, its state, the tokens of the word it is in the middle of, its score.
    live: list[tuple[tuple[int, ...], int, tuple[int, ...], float]] = [((), graph.graph.start, (), 0.0)]
    with torch.inference_mode():
        prompt = prompt or run_prompt(model, initial, audio_features)
        for _ in range(max_tokens):
            if not live:
                break
            tokens = torch.tensor([list(h[0]) for h in live], dtype=torch.long).reshape(len(live), -1)
            logp = _logprobs(model, _hidden(model, prompt, tokens)[:, -1])
            grown: dict[tuple[tuple[int, ...], int, tuple[int, ...]], float] = {}
            for (seq, state, prefix, total), row in zip(live, logp, strict=True):
                if not prefix and state in graph.graph.finals:
                    text = tokenizer.decode(list(seq)).strip()
                    done = Scored(text, total + float(row[eot]), len(seq) + 1)
                    if text not in finished or finished[text].total < done.total:
                        finished[text] = done
                options = graph.branches(state, prefix)
                if not options:
                    continue
                ids = list(options)
                for token, value in zip(ids, row[ids].tolist(), strict=True):
                    more, ends = options[token]
                    step = (*seq, token)
                    for key in ([(step, state, (*prefix, token))] if more else []) + [(step, t, ()) for t in ends]:
                        grown[key] = total + value
            live = [(k[0], k[1], k[2], v) for k, v in sorted(grown.items(), key=lambda kv: -kv[1])[:beam]]
            ranked = sorted(finished.values(), key=lambda s: -s.total)[:best]
            if len(ranked) == best and live and live[0][3] < ranked[-1].total:
                break
    return sorted(finished.values(), key=lambda s: -s.total)[:best]


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


@dataclass(frozen=True)
class Modifier:
    """Words of a free transcript that qualify a command, which the grammar's canonical commands
    do not hold: an amount ("a bit", "slightly", "a lot"), a side or direction ("left", "to the
    left") or a distance ("by 8 pixels")."""

    kind: str  # "amount", "side" or "distance"
    words: tuple[str, ...]  # as heard: what is inserted into a candidate that lacks this kind
    start: int  # the index of its first word among the transcript's words (`words_of`)
    confident: bool = False  # every one of its words heard with confidence (GrammarSettings.confident_word)

    @property
    def key(self) -> tuple[str, ...]:
        """The words a candidate must hold to keep this modifier: a side is its word ("left"), however
        it was said ("to the left", "left"); an amount or a distance, all of its words."""
        return self.words[-1:] if self.kind == "side" else self.words


_WORD = re.compile(r"\d+(?:\.\d+)?|[a-z][a-z']*")


def words_of(text: str) -> list[str]:
    """A text's words as the modifiers count them: lower case, digits kept, punctuation dropped."""
    return _WORD.findall(text.lower())


@functools.cache
def _modifier_tables() -> tuple[frozenset[tuple[str, ...]], frozenset[tuple[str, ...]], int]:
    """The lexicon's amount phrases and side phrases (each as words), and the longest's length."""
    from voicedrag.language import lexicon as lx

    amounts = set(lx.AMOUNTS) | set(lx.PHRASE_AMOUNTS)
    amount = {tuple(k.split()) for k, v in lx.PHRASES.items() if v in amounts} | {(w,) for w in lx.AMOUNTS}
    sides = set(lx.DIRECTION_WORDS) | set(lx.SIDE_WORDS)
    side = {tuple(k.split()) for k, v in lx.PHRASES.items() if v in sides and k.split()[-1] in lx.LEFT_RIGHT}
    side |= {(w,) for w in lx.LEFT_RIGHT}
    return frozenset(amount), frozenset(side), max(len(p) for p in amount | side)


def _is_number(word: str) -> bool:
    from voicedrag.language import lexicon as lx

    return word[0].isdigit() or word in lx.NUMBER_WORDS


def _distance_at(words: Sequence[str], i: int) -> int:
    """The length of a distance said at words[i] ("by 8 pixels", "by eight", "8 pixels"), or 0."""
    from voicedrag.language import lexicon as lx

    j = i + 1 if words[i] == "by" else i
    k = j
    while k < len(words) and _is_number(words[k]):
        k += 1
    if k == j:
        return 0
    if k < len(words) and words[k] in lx.PIXEL_WORDS:
        return k + 1 - i
    return k - i if j > i else 0  # a bare number is a distance only after "by"


def modifiers(
    text: str, confidence: Sequence[float] | None = None, settings: GrammarSettings | None = None
) -> list[Modifier]:
    """The amounts, sides and distances said in a transcript, in order; `confidence` (one log-
    probability per word of `words_of(text)`, from `word_confidence`) marks those heard with
    confidence."""
    amount, side, longest = _modifier_tables()
    floor = (settings or GrammarSettings()).confident_word
    words = words_of(text)
    found: list[Modifier] = []
    i = 0
    while i < len(words):
        size, kind = _distance_at(words, i), "distance"
        for n in range(min(longest, len(words) - i), 0, -1):
            if size:
                break
            run = tuple(words[i : i + n])
            if run in amount or run in side:
                size, kind = n, "amount" if run in amount else "side"
        if not size:
            i += 1
            continue
        last = found[-1] if found else None
        if last is not None and kind == last.kind == "amount" and i - (last.start + len(last.words)) <= 1:
            # "twice as much", "much, much more": amounts a word apart are one, said with the word
            # between them (which the parser reads past, and a candidate without it does not sound like).
            size += i - last.start
            i = last.start
            found.pop()
        sure = confidence is not None and len(confidence) == len(words) and min(confidence[i : i + size]) >= floor
        found.append(Modifier(kind, tuple(words[i : i + size]), i, sure))
        i += size
    return found


def _holds(words: Sequence[str], kind: str) -> bool:
    """Whether a candidate's words already hold a modifier of this kind (of any value)."""
    amount, side, _ = _modifier_tables()
    if kind == "side":
        return any((w,) in side for w in words)
    if kind == "amount":
        return any(tuple(words[i : i + len(p)]) == p for p in amount for i in range(len(words)) if words[i] == p[0])
    return any(_distance_at(words, i) for i in range(len(words)))


def with_modifiers(text: str, heard: Sequence[str], found: Sequence[Modifier]) -> str:
    """`text` with each of `found` (modifiers of the transcript whose words are `heard`) that it has
    no modifier of the same kind for, inserted where it was heard: the two word sequences are
    aligned, and a modifier goes where its place in the transcript falls in the candidate."""
    words = text.split()
    lacking = [m for m in found if not _holds(words, m.kind)]
    if not lacking:
        return text
    ops = difflib.SequenceMatcher(None, list(heard), words, autojunk=False).get_opcodes()
    inserts: list[tuple[int, int, tuple[str, ...]]] = []
    for m in lacking:
        for tag, i1, i2, j1, j2 in ops:
            if i1 <= m.start < i2:
                # Said among words the candidate has: in the same place; among words it has others
                # for ("here a bit" for "ear"): before them when it opened the span, else after.
                at = j1 + (m.start - i1) if tag == "equal" else (j1 if m.start == i1 else j2)
                inserts.append((at, m.start, m.words))
                break
    out: list[str] = []
    inserts.sort()
    k = 0
    for j in range(len(words) + 1):
        while k < len(inserts) and inserts[k][0] == j:
            out.extend(inserts[k][2])
            k += 1
        if j < len(words):
            out.append(words[j])
    return " ".join(out)


def word_confidence(tokenizer: Any, scored: Scored) -> list[float] | None:
    """Per word of `words_of(scored.text)`: the lowest log-probability among the tokens that spell
    it (from `scored.token_logprobs`); None where the tokens do not spell the text back."""
    seq = tokenizer.encode(" " + scored.text.strip())
    if len(scored.token_logprobs) < len(seq):
        return None
    spans: list[tuple[int, int, float]] = []
    at = 0
    for token, logp in zip(seq, scored.token_logprobs, strict=False):
        piece = tokenizer.decode([token])
        spans.append((at, at + len(piece), logp))
        at += len(piece)
    spelled = " " + scored.text.strip()
    if at != len(spelled):
        return None
    out = []
    for m in _WORD.finditer(spelled.lower()):
        inside = [p for a, b, p in spans if a < m.end() and b > m.start()]
        out.append(min(inside) if inside else 0.0)
    return out


def carrying(
    texts: Sequence[str], heard: str, found: Sequence[Modifier], forms: dict[str, str], limit: int
) -> dict[str, str]:
    """Of the first `limit` texts (spoken forms, or several joined by "and"), each that lacks a
    modifier of the transcript `heard`, with the modifiers added: {new text: the canonical command
    it stands for, with the same modifiers}."""
    if not found:
        return {}
    words = words_of(heard)
    out: dict[str, str] = {}
    for text in texts[:limit]:
        added = with_modifiers(text, words, found)
        if added != text and added not in out:
            base = forms.get(text) or " and ".join(forms.get(p, p) for p in text.split(" and "))
            out[added] = with_modifiers(base, words, found)
    return out


def keeps(text: str, found: Sequence[Modifier]) -> bool:
    """Whether a text holds every modifier of `found` (the words of each, in a row)."""
    words = text.lower().split()
    return all(any(tuple(words[i : i + len(m.key)]) == m.key for i in range(len(words))) for m in found)


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
    free_text: str,
    reading: Reading,
    scored: Sequence[Scored],
    settings: GrammarSettings,
    heard_unsure: bool = False,
    sure: Sequence[Modifier] = (),
) -> GrammarChoice:
    """Of the grammar's readings, the one the audio makes most likely, if it is likely enough
    (`unsure_min_avg_logprob` where Whisper was unsure of what it heard, see `unsure`); else the
    free transcript (which the parser then reads, or refuses, as usual). A reading without the
    modifiers heard with confidence (`sure`) must be clearly likelier (`drop_margin`) than the
    best reading that keeps them."""
    if reading.as_heard or not scored:
        return GrammarChoice(free_text, "free", free_text, list(scored))

    def value(s: Scored) -> float:
        return s.total + settings.length_bonus * s.tokens

    best = max(scored, key=value)
    kept = [s for s in scored if keeps(s.text, sure)]
    if kept and best not in kept:
        alternative = max(kept, key=value)
        if value(best) - value(alternative) < settings.drop_margin:
            best = alternative
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

    from voicedrag.language import lexicon as lx
    from voicedrag.language.tokens import collapse_repeats, join_words, merge_phrases, normalize

    verbs = set(lx.VERBS) | set(parser.vocab.rule_verbs) | set(lx.ADJECTIVES) | set(lx.MAKE_WORDS)

    def read(text: str) -> Reading:
        result = parser.parse(text)
        understood = bool(result.edits or result.control) and not result.error
        # The parser writes its phrases one way ("a bit" as "a little", "slightly to the left" as
        # "slightly left"): that is a reading of the words said, not a correction of them.
        plain = " ".join(join_words(merge_phrases(normalize(text))).replace(",", " ").split())
        said = " ".join(result.corrected.replace(",", " ").split())
        # As heard: no word corrected, none read past ("break up the left ear" is read as "up the
        # left ear" without "break"), and no paraphrase guessed; anything less is checked on the audio.
        as_heard = understood and not (result.corrections or result.ignored or result.matched) and said == plain
        # ... and none of the modifiers said lost on the way ("close to the left eye" is read as
        # "close the eyes": the audio decides between that and "close the left eye").
        kept = all(_kept(m, result.edits) for m in modifiers(text))
        points = tuple((p.x, p.y) for e in result.edits for p in (e.handle, e.target) if p is not None and understood)
        # An edit whose action no word said ("to in the head to the right" is read as a move of the
        # head, "turn" lost in "to in") is the parser's guess, and so checked on the audio too.
        said_verb = result.control is not None or bool(points) or any(w in verbs for w in words_of(result.corrected))
        as_heard = as_heard and said_verb
        if not kept:  # scored as the parser read it ("close left eye"), which the audio supports less
            return Reading(understood, False, _without(result.corrected, result.ignored), points)
        # Scored on the audio: the words as said, with the parser's corrections ("a bit", not the
        # "a little" it writes for it, which was not said and so scores low).
        words = collapse_repeats(normalize(text))
        for heard, used in result.corrections:
            if heard in words:
                words[words.index(heard)] = used
        return Reading(understood, as_heard, _without(join_words(words), result.ignored), points)

    return read


def _kept(modifier: Modifier, edits: Sequence[Any]) -> bool:
    """Whether the parsed edits (EditIntent) hold a modifier of the text they were read from."""
    if modifier.kind == "amount":
        return any(e.amount != 1.0 for e in edits)
    if modifier.kind == "side":
        return any(modifier.key[0] in (e.side, e.direction) for e in edits)
    return any(e.pixels is not None for e in edits)


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
