"""Prompts of a requested length in tokens for a server whose tokenizer bench does not have.

The heuristic: ``n`` words drawn (seeded by the request's seed) from a fixed list of short,
common English words, joined by single spaces. Byte-pair and SentencePiece vocabularies split
text at spaces first and hold each of these words, with its leading space, as one token (they
are among the most frequent words of the text such vocabularies are trained on), so ``n`` words
come to about ``n`` tokens: the first word may lack its space-prefixed form, a tokenizer may add
a beginning-of-sequence token, and a chat template adds its own tokens around the message.
This was chosen, not measured against each tokenizer (none is installed here): the server's own
count (``usage.prompt_tokens``) is kept per request and compared with what was asked
(``bench.serve.generation.client_checks.prompt_lengths``), which shows how far off it is.

Each request draws its own words, so a server's prefix cache does not serve one prompt to all.
"""

from __future__ import annotations

import numpy as np

_WORDS = """the of and to in is was for on that with as at by from his her they we you it an be are
    this which or had not but have one were all their there been has when who will more no if
    out so said what up its about into than them can only other new some could time these two
    may then do first any my now such like our over man me even most made after also did many
    before must through back years where much your way well down should because each just those
    people how too little state good very make world still own see men work long get here
    between both life being under never day same another know while last might us great old
    year off come since against go came right used take three house use during without again
    place around however home small found part once general high upon school every don does
    got left number course war until always away something fact though water less public put
    think almost hand enough far took head yet government system better set told nothing night
    end why called"""
WORDS = tuple(_WORDS.split())


def synth_prompt(tokens: int, seed: int) -> str:
    """About ``tokens`` tokens of text (see the module's heuristic), the same for the same
    seed on every machine."""
    if tokens < 1:
        raise ValueError(f"a prompt of {tokens} tokens; expected at least 1")
    picks = np.random.default_rng(seed).integers(0, len(WORDS), size=tokens)
    return " ".join(WORDS[int(k)] for k in picks)
