def normalize(vec: list[float]) -> list[float]:
    """Normalize a vector to unit length.

    Parameters
    ----------
    vec : list[float]
        The vector to normalize.

    Returns
    -------
    list[float]
        The unit vector.
    """
    norm = sum(x * x for x in vec) ** 0.5
    return [x / norm for x in vec]
