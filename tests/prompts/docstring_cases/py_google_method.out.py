"""A text buffer."""


class Buffer:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.cursor = 0

    def move(self, lines: int, wrap: bool = False) -> int:
        """Move the cursor by a number of lines.

        Args:
            lines: How many lines to move; negative moves up.
            wrap: Whether to wrap around at the ends.

        Returns:
            The new cursor line.

        Raises:
            IndexError: If the move leaves the buffer and wrap is false.
        """
        target = self.cursor + lines
        if not 0 <= target < len(self.lines):
            if not wrap:
                raise IndexError("cursor out of range")
            target %= len(self.lines)
        self.cursor = target
        return target
