"""One generic name -> entry registry, used for every kind of plug-in (runtimes, formats, strategies, ...)."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from ofa_edge.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind: registering a name twice is refused, an unknown name lists the known ones.

    Args:
        kind: What the entries are, for messages ("device runtime", "export format").
        field: The input field an unknown name comes from (carried by :class:`UnknownNameError`).
    """

    def __init__(self, kind: str, field: str = ""):
        self.kind = kind
        self.field = field
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; raises ValueError if the name is taken (a programming error)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind}: a name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r}); "
                             "pick another name or remove the old entry first")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda entry: self.add(name, entry)

    def remove(self, name: str) -> T:
        """Unregister ``name`` (for tests and plug-ins that replace an entry); returns the entry."""
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists the known names.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self.list(), self.field) from None

    def list(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def names(self) -> tuple[str, ...]:
        """The registered names in registration order (the order CLI help shows them in)."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"
