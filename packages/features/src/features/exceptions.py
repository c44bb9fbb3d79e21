"""Errors raised by the features package."""


class SpecError(ValueError):
    """A feature spec is malformed: the message names the file and each offending field."""


class CompileError(ValueError):
    """A fitted pipeline holds a step the NumPy inference path does not implement."""


class InputError(ValueError):
    """The whole input is refused (a spec column absent, an unknown field, a record that is not
    an object): ``problems`` lists the first of them as ``(record, field, message)``, ``total``
    counts them all. The message names the input and each problem."""

    def __init__(
        self, source: str, problems: list[tuple[int | None, str | None, str]], total: int
    ) -> None:
        self.source = source
        self.problems = problems
        self.total = total
        lines = [
            "  "
            + ", ".join(
                part
                for part in (
                    None if record is None else f"record {record}",
                    None if field is None else f"column {field!r}",
                )
                if part
            )
            + (": " if record is not None or field is not None else "")
            + message
            for record, field, message in problems[:10]
        ]
        more = f"\n  ... and {total - 10} more" if total > 10 else ""
        super().__init__(f"{source}: input refused:\n" + "\n".join(lines) + more)
