"""How far two models' alignments agree on one input: shared by the chatbot's Compare tab and
`python -m training.predict --compare`.

    from seq2seq_tools.compare import alignment_agreement
    agreement = alignment_agreement(first.attention, second.attention)  # None: nothing to compare
    agreement.agreed, agreement.compared, agreement.share  # e.g. 4, 5, 0.8

Each output token's hard alignment is the source token it attends to most (`hard_alignment`, as
Marian's and fast_align's alignments are read; special tokens take no part). Two outputs agree on
output position t when both have a t-th token and both align it to the same source position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .attention import AttentionMap, hard_alignment


@dataclass(frozen=True)
class AlignmentAgreement:
    """Agreement of one output's alignment with a reference output's, or of many such pairs summed.

    Args:
        agreed: output positions where both outputs have a token aligned to the same source position.
        compared: output positions compared: the longer output's length in tokens (special tokens
            such as `</s>` not counted), so that the tokens one output has and the other lacks count
            as disagreements.
    """

    agreed: int
    compared: int

    @property
    def share(self) -> float:
        """`agreed / compared`, from 0 to 1 (1 for two empty outputs: nothing disagrees)."""
        return self.agreed / self.compared if self.compared else 1.0

    def __add__(self, other: AlignmentAgreement) -> AlignmentAgreement:
        return AlignmentAgreement(self.agreed + other.agreed, self.compared + other.compared)

    def describe(self) -> str:
        """`"4 of 5 output tokens (80%)"`."""
        return f"{self.agreed} of {self.compared} output tokens ({100 * self.share:.0f}%)"


def aligned_sources(attention: AttentionMap) -> list[int]:
    """The most-attended source position of each output token, in output order (special tokens left out)."""
    return [source for source, _ in sorted(hard_alignment(attention), key=lambda pair: pair[1])]


def alignment_agreement(reference: AttentionMap | None, other: AttentionMap | None) -> AlignmentAgreement | None:
    """How far `other`'s alignment agrees with `reference`'s, both over the same input.

    Outputs of different lengths are compared position by position from the start: with m and n
    output tokens (`</s>` and other special tokens left out, as `hard_alignment` leaves them out),
    the first min(m, n) positions are compared, and the share is the number of positions t whose
    most-attended source token is the same in both, divided by max(m, n). So an output that stops
    early or runs on is penalised for every token the other lacks; two identical alignments of equal
    length give 1, and two empty outputs give 1 (0 of 0: nothing disagrees).

    Returns None when there is nothing to compare: either model has no attention (a None map), or
    the two read the source as different tokens (different tokenizers), so that source positions do
    not name the same thing.
    """
    if reference is None or other is None or reference.source_labels != other.source_labels:
        return None
    first, second = aligned_sources(reference), aligned_sources(other)
    agreed = sum(a == b for a, b in zip(first, second, strict=False))  # the first min(m, n) positions
    return AlignmentAgreement(agreed=agreed, compared=max(len(first), len(second)))


def pooled(agreements: Iterable[AlignmentAgreement | None]) -> AlignmentAgreement | None:
    """The agreements of many inputs summed (a token-weighted share); None when none was comparable."""
    comparable = [agreement for agreement in agreements if agreement is not None]
    if not comparable:
        return None
    total = comparable[0]
    for agreement in comparable[1:]:
        total = total + agreement
    return total


__all__ = ["AlignmentAgreement", "aligned_sources", "alignment_agreement", "pooled"]
