"""When a daily budget's usage is worth an alert: at 80 % and at 100 % of its tokens or its dollars,
whichever is further along (a limit of 0 refuses every request and is never alerted on)."""

from xpi.domain.access import Budget

THRESHOLDS = (80, 100)


def thresholds_reached(budget: Budget, tokens: int, usd: float) -> list[int]:
    shares = []
    if budget.tokens_per_day:
        shares.append(tokens / budget.tokens_per_day)
    if budget.usd_per_day:
        shares.append(usd / budget.usd_per_day)
    share = max(shares, default=0.0) * 100
    return [t for t in THRESHOLDS if share >= t]
