def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    return


def is_prime(n: int) -> bool:
    """True when n is a prime number."""
