"""The demo model's tokenizer: a byte-level BPE vocabulary with ChatML control tokens.

Owns the 256 byte tokens (GPT-2's byte-to-character table), the merges that build the word
pieces the demo's logit bias favours (``WORDS_TEXT``, ``BIGRAMS_TEXT``, ``CODE_PIECES``), the
special tokens and the ChatML ``CHAT_TEMPLATE``. The weights and the GGUF writer are
``demo_model.py``'s.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
# Word pieces the merges build, so output looks vaguely like prose and code, not byte soup.
WORDS_TEXT = (
    "the and def return self import class for in if else elif print value data model token int "
    "str list dict None True False error file test code function let const var fn is to of a it "
    "this that with from as not or on at by be we you can will run use get set add new end while "
    "loop array index count name path config server expert layer cache batch thread memory speed "
    "quant weight tensor load save read write open close start stop check result output input "
    "user system assistant string number type bool float async await yield lambda try except "
    "raise pass break continue match case struct impl pub mod use crate self here there what when "
    "how why which because then also just some more most only over under into out up down all"
)
BIGRAMS_TEXT = (
    "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve "
    "co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur"
)
CODE_PIECES = ("()", "):", "==", "->", "[]", "{}", "  ", "    ", ", ", ". ", "\n\n", "\n    ")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table used by byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@dataclass(frozen=True)
class Vocab:
    """Token strings (GPT-2 byte-encoded), their ggml token types, BPE merges, special ids."""

    tokens: tuple[str, ...]
    token_types: tuple[int, ...]
    merges: tuple[str, ...]
    token_bytes: tuple[bytes, ...]
    """What each token decodes to (specials: their UTF-8 text)."""
    eos_id: int
    bos_id: int
    im_start_id: int


NORMAL, CONTROL = 1, 3  # gguf.TokenType values


def build_vocab() -> Vocab:
    """256 byte tokens (id = byte value), merges building the word pieces, then the specials."""
    enc = bytes_to_unicode()
    tokens = [enc[b] for b in range(256)]
    token_bytes = [bytes([b]) for b in range(256)]
    index = {t: i for i, t in enumerate(tokens)}
    merges: list[str] = []
    words = WORDS_TEXT.split()
    pieces = [*BIGRAMS_TEXT.split(), *words, *(" " + w for w in words), *CODE_PIECES]
    for piece in pieces:
        raw = piece.encode("utf-8")
        left = enc[raw[0]]
        for b in raw[1:]:
            right = enc[b]
            joined = left + right
            if joined not in index:
                merges.append(f"{left} {right}")
                index[joined] = len(tokens)
                tokens.append(joined)
                token_bytes.append(token_text_bytes(joined))
            left = joined
    first_special = len(tokens)
    tokens.extend(SPECIAL_TOKENS)
    token_bytes.extend(s.encode() for s in SPECIAL_TOKENS)
    types = [NORMAL] * first_special + [CONTROL] * len(SPECIAL_TOKENS)
    return Vocab(
        tokens=tuple(tokens),
        token_types=tuple(types),
        merges=tuple(merges),
        token_bytes=tuple(token_bytes),
        eos_id=first_special + SPECIAL_TOKENS.index("<|im_end|>"),
        bos_id=first_special + SPECIAL_TOKENS.index("<|endoftext|>"),
        im_start_id=first_special + SPECIAL_TOKENS.index("<|im_start|>"),
    )


@functools.cache
def _unicode_to_byte() -> dict[str, int]:
    return {v: k for k, v in bytes_to_unicode().items()}


def token_text_bytes(token: str) -> bytes:
    """The bytes a GPT-2 byte-encoded token string stands for."""
    table = _unicode_to_byte()
    return bytes(table[c] for c in token)
