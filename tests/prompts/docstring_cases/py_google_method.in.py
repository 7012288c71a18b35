"""A text buffer."""


class Buffer:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.cursor = 0

    def move(self, lines: int, wrap: bool = False) -> int:
        target = self.cursor + lines
        if not 0 <= target < len(self.lines):
            if not wrap:
                raise IndexError("cursor out of range")
            target %= len(self.lines)
        self.cursor = target
        return target
