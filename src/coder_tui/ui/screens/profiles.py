"""The profile picker: every profile's model, size, quant, split and last numbers; the flags that
change against the running one; Enter to swap (the App runs the swap and shows its phases)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from coder_tui.core.config.loader import Profile
from coder_tui.core.gguf.profile_info import ProfileInfo
from coder_tui.core.sanitize import sanitize
from coder_tui.core.server.argv import diff_profiles
from coder_tui.ui import format as fmt
from coder_tui.ui.columns import Column, fit, hidden_note
from coder_tui.ui.widgets.key_footer import KeyFooter


def diff_text(current: Profile | None, other: Profile) -> str:
    """The settings that change from ``current`` to ``other``, one per line."""
    if current is None:
        return "no server running: Enter starts this profile"
    if current.name == other.name:
        return "this is the running profile"
    changes = diff_profiles(current, other)
    if not changes:
        return "same flags as the running profile: a swap would change nothing"
    lines = []
    for field, old, new in changes:
        old_s = old.name if hasattr(old, "name") and field == "model" else old  # type: ignore[union-attr]
        new_s = new.name if hasattr(new, "name") and field == "model" else new  # type: ignore[union-attr]
        old_s = "unset" if old is None else old_s  # None reads as Python, not as "not set"
        new_s = "unset" if new is None else new_s
        lines.append(f"{field}: {old_s} → {new_s}")
    return "\n".join(lines)


COLUMNS = (
    Column("running", "", 0),
    Column("profile", "profile", 0),
    Column("model", "model", 7),
    Column("size", "size", 3),
    Column("quant", "quant", 6),
    Column("ngl", "-ngl", 4),
    Column("cpu_moe", "cpu-moe", 5),
    Column("gen", "gen", 1),
    Column("load", "load", 2),
)
"""The table's columns; a narrow terminal leaves out the highest priority numbers first (the
model file's long name before the numbers), and the screen says which."""


class ProfilesScreen(ModalScreen[str | None]):
    """Pick a profile; dismisses with its name (or None)."""

    DEFAULT_CSS = """
    ProfilesScreen { align: center middle; }
    ProfilesScreen > Vertical {
        width: 95%; max-width: 140; height: 85%; border: round $accent; background: $surface;
    }
    ProfilesScreen DataTable { height: 1fr; }
    ProfilesScreen #diff { height: auto; max-height: 8; padding: 0 1; color: $text-muted; }
    ProfilesScreen #hidden { height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Close")]

    def __init__(
        self,
        profiles: Mapping[str, Profile],
        infos: Mapping[str, ProfileInfo],
        current: Profile | None,
        last_speed: Mapping[str, float | None],
        load_times: Mapping[str, float],
    ) -> None:
        super().__init__()
        self.profiles = profiles
        self.infos = infos
        self.current = current
        self.last_speed = last_speed
        self.load_times = load_times

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("profiles  (Enter swap · Esc close)")
            yield DataTable(id="table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="hidden", markup=False)
            yield Static("", id="diff", markup=False)
        yield KeyFooter()

    def rows(self) -> list[dict[str, str]]:
        """Every profile's cells, by column key."""
        out = []
        for name, info in self.infos.items():
            running = self.current is not None and self.current.name == name
            load = self.load_times.get(name)
            out.append(
                {
                    "running": "▶" if running else "",
                    "profile": name,
                    "model": sanitize(info.model_file),
                    "size": fmt.size(info.size_bytes) if not info.error else "missing",
                    "quant": info.quant or "–",
                    "ngl": "–" if info.n_gpu_layers is None else str(info.n_gpu_layers),
                    "cpu_moe": "–" if info.n_cpu_moe is None else str(info.n_cpu_moe),
                    "gen": fmt.tokens(self.last_speed.get(name)),
                    "load": "–" if load is None else f"{load:.1f} s",
                }
            )
        return out

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def on_resize(self) -> None:
        self._fill()

    def _fill(self) -> None:
        """Fill the table with the columns that fit its width (again when that changes)."""
        table = self.query_one(DataTable)
        rows = self.rows()
        width = table.size.width or self.size.width
        kept, dropped = fit(COLUMNS, rows, width - 2)  # the scrollbar's room
        keys = [c.key for c in kept]
        if [k.value for k in table.columns] == keys and table.row_count:
            return
        cursor = table.cursor_row
        table.clear(columns=True)
        for column in kept:
            table.add_column(column.label, key=column.key)
        for row in rows:
            table.add_row(*(row[k] for k in keys), key=row["profile"])
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.query_one("#hidden", Static).update(hidden_note(dropped))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value
        if name is not None and name in self.profiles:
            info = self.infos[name]
            text = diff_text(self.current, self.profiles[name])
            if info.error:
                text = f"{info.error}\n{text}"
            self.query_one("#diff", Static).update(text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(event.row_key.value)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
