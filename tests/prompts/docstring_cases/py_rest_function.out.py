def normalize(vec: list[float], eps: float = 1e-12) -> list[float]:
    """Normalize a vector to unit length.

    :param vec: The vector to normalize.
    :type vec: list[float]
    :param eps: Smallest norm treated as non-zero.
    :type eps: float
    :returns: The unit vector.
    :rtype: list[float]
    """
    norm = max(sum(x * x for x in vec) ** 0.5, eps)
    return [x / norm for x in vec]
