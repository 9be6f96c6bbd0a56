"""Gates and findings from measured figures (``verify.CHECKS``).

``Verdicts`` collects, stage by stage, each gate's result and the failures that stop the export,
and each finding with its verdict and its one-line message: what the figure is, its expected
range and, beyond it, what that means on a phone. Figures only (floats and names, no arrays), so
every rule here is tested without converting anything.
"""

import math

from vosx.errors import ParityError
from vosx.export import verify
from vosx.export.report import BEYOND, INCONCLUSIVE, NOT_RUN, WITHIN, EndToEnd, Finding

ALLOW_HINT = "pass --allow-cpu-ops to accept CPU fallback"


def scientific(x: float) -> str:
    """A bound in the report's ``expected`` form, no digit lost: 3e-02, 2.5e-01."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def percent(x: float) -> str:
    """0.0598 -> '6%', 0.0011 -> '0.11%', 1.23 -> '123%': two significant digits, or whole
    percents (Inf/NaN: an overflow)."""
    if not math.isfinite(x):
        return "Inf (an fp16 overflow)"
    return f"{100 * x:.0f}%" if 100 * x >= 10 else f"{100 * x:.2g}%"


class Verdicts:
    """Every gate's result, the failures so far, and every finding of one export.

    Args:
        allow_cpu_ops: ``gpu_ops`` and ``gpu_defect`` problems are accepted (recorded, not
            failures), as ``--allow-cpu-ops`` asks.
        user_calibration: int8 was calibrated on the user's ``--calib`` videos (the int8
            findings' advice says so: ``verify.CALIBRATE_HINTS``).
    """

    ACCEPTABLE = ("gpu_ops", "gpu_defect")

    def __init__(self, allow_cpu_ops: bool = False, user_calibration: bool = False):
        self.allow_cpu_ops = allow_cpu_ops
        self.calibrate = verify.CALIBRATE_HINTS[user_calibration]
        self.gates: dict[str, str] = {}
        self.failures: list[str] = []
        self._findings: dict[str, Finding] = {}

    # ---------------------------------------------------------------------------------- gates

    def gate(self, name: str, problems: list[str]) -> None:
        """A gate ran: its problems fail the export (or are accepted: ``ACCEPTABLE``)."""
        _kind(name, verify.GATE)
        if not problems:
            if self.gates.get(name, NOT_RUN).startswith(NOT_RUN):
                self.gates[name] = "passed"
            return
        if self.allow_cpu_ops and name in self.ACCEPTABLE:
            self.gates[name] = "accepted (--allow-cpu-ops): " + "; ".join(problems)
            return
        self.gates[name] = "failed: " + "; ".join(problems)
        self.failures += problems

    def not_run(self, name: str, why: str) -> None:
        """A gate that did not run (unless it already ran), and why."""
        _kind(name, verify.GATE)
        self.gates.setdefault(name, f"{NOT_RUN}: {why}")

    def raise_failures(self, stage: str) -> None:
        """Raise every failure so far as one ``ParityError`` naming the stage.

        Raises:
            ParityError: some gate failed.
        """
        if self.failures:
            raise ParityError(f"{stage}: " + " | ".join(self.failures))

    # ------------------------------------------------------------------------------- findings

    def drift(
        self,
        name: str,
        figures: dict[str, float],
        bound: float,
        adapter: str | None = None,
        reference: dict[str, float] | None = None,
    ) -> Finding:
        """A max-relative-difference finding: the worst of ``figures`` (subject -> figure)
        against ``bound``.

        ``adapter`` and ``reference`` (subject -> fp16 arithmetic's figure) for
        ``gpu_arithmetic``.
        """
        _kind(name, verify.FINDING)
        subject = max(figures, key=lambda k: figures[k])
        figure = figures[subject]
        c = verify.check(name)
        what, means = c.says, c.beyond.format(calibrate=self.calibrate)
        ref = (reference or {}).get(subject)
        text = what.format(
            subject=subject,
            figure=percent(figure),
            bound=percent(bound),
            adapter=adapter or "unknown adapter",
            reference="not run" if ref is None else percent(ref),
        )
        verdict = WITHIN if figure <= bound else BEYOND
        message = text if verdict == WITHIN else f"{text}: {means}"
        expected = f"<= {scientific(bound)}"
        return self._add(Finding(name, verdict, figure, expected, subject, message, figures))

    def clip(self, name: str, e2e: EndToEnd, bound: float, adapter: str | None = None) -> Finding:
        """A clip finding: the worst frame's mask IoU against ``bound``."""
        _kind(name, verify.FINDING)
        c = verify.check(name)
        which, means = c.says, c.beyond.format(calibrate=self.calibrate)
        which = which.format(adapter=adapter or "unknown adapter")
        subject = f"frame {1 + e2e.per_frame.index(e2e.min_iou)} of {len(e2e.per_frame) + 1}"
        details = {f"frame {i + 1}": iou for i, iou in enumerate(e2e.per_frame)}
        if not e2e.conclusive:
            message = (
                f"masks {which}: inconclusive, {percent(e2e.tie_fraction)} of pixels are near ties "
                "(label agreement says nothing)"
            )
            finding = Finding(name, INCONCLUSIVE, e2e.min_iou, f">= {bound}", subject, message)
            return self._add(finding)
        changed = percent(1.0 - e2e.min_iou)
        text = (
            f"{changed} of mask pixels change {which} on this clip (worst frame's IoU "
            f"{e2e.min_iou:.4f}, expected >= {bound})"
        )
        verdict = WITHIN if e2e.min_iou >= bound else BEYOND
        message = text if verdict == WITHIN else f"{text}: {means}"
        return self._add(
            Finding(name, verdict, e2e.min_iou, f">= {bound}", subject, message, details)
        )

    def finding_not_run(self, name: str, why: str) -> None:
        """A finding that could not be measured (no fp16 file, no GPU), and why."""
        _kind(name, verify.FINDING)
        if name not in self._findings:
            self._add(Finding(name, NOT_RUN, None, "", "", why))

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding, in ``verify.CHECKS`` order."""
        return tuple(self._findings[n] for n in verify.CHECK_NAMES if n in self._findings)

    def warnings(self) -> list[str]:
        """The message of every finding beyond its expected range."""
        return [f.message for f in self.findings if f.verdict == BEYOND]

    def _add(self, finding: Finding) -> Finding:
        self._findings[finding.check] = finding
        return finding


def _kind(name: str, kind: str) -> None:
    """Refuse a name that is not a ``verify.CHECKS`` entry of that kind (a programming error)."""
    if name not in verify.CHECK_NAMES or verify.check(name).kind != kind:
        raise ValueError(f"{name!r} is not a {kind} of verify.CHECKS")
