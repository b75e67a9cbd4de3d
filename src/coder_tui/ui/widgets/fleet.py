"""The fleet view: one row per remote llama-server (``[[remotes]]``). Renders only; Enter on a row
posts ``ChatWith`` so the App can point the chat at that server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.message import Message
from textual.widgets import DataTable

from coder_tui.core.metrics.fleet import FleetRow
from coder_tui.core.sanitize import sanitize
from coder_tui.ui import format as fmt

LOCAL = "(this machine)"


class FleetTable(DataTable[str]):
    """Name, state, model, phase, tokens/s, KV fill, VRAM, last error."""

    DEFAULT_CSS = """
    FleetTable { height: auto; max-height: 12; border: round $panel-lighten-2; }
    """

    @dataclass
    class ChatWith(Message):
        """Chat with the server of this row (``name`` is ``LOCAL`` for the managed one)."""

        name: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.border_title = "fleet  (Enter: chat with it)"

    def on_mount(self) -> None:
        self.add_columns("server", "state", "model", "phase", "gen", "KV", "VRAM", "last error")
        self.add_row(LOCAL, "local", "", "", "", "", "", "", key=LOCAL)

    def show(self, rows: Sequence[FleetRow]) -> None:
        for row in rows:
            vram = (
                f"{fmt.size(row.gpu_memory_used_bytes)} / {fmt.size(row.gpu_memory_total_bytes)}"
                if row.gpu_memory_total_bytes
                else ("no GPU" if row.gpu_available is False else "–")
            )
            cells = [
                sanitize(row.name),
                "up" if row.up else "DOWN",
                sanitize(row.model or "–"),
                row.phase.value,
                fmt.tokens(row.generation_tokens_per_s),
                fmt.percent(row.kv_fill_ratio),
                vram,
                sanitize((row.error or row.last_error or "")[:60]),
            ]
            if row.name in self.rows:
                for column, value in zip(self.columns, cells, strict=False):
                    self.update_cell(row.name, column, value)
            else:
                self.add_row(*cells, key=row.name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(self.ChatWith(event.row_key.value))
