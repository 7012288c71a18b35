def normalize(vec: list[float], eps: float = 1e-12) -> list[float]:
    """Old docstring."""
    norm = max(sum(x * x for x in vec) ** 0.5, eps)
    return [x / norm for x in vec]
