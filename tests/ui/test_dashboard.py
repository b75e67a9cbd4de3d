"""Dashboard tiles from metrics snapshots: texts, GPU and no-GPU states, narrow and wide layouts."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App, ComposeResult

from coder_tui.core.config.loader import Config
from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.types import (
    GpuDeviceSample,
    GpuSnapshot,
    HostSnapshot,
    MetricsSnapshot,
    ProcessSample,
    ServerPhase,
    ServerSample,
)
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui import metrics_view
from coder_tui.ui.app import CoderApp
from coder_tui.ui.messages import MetricsUpdated
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.widgets.dashboard import Dashboard, MetricsStrip
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.tile import MetricTile

GIB = 2**30


def _snap(
    gpu: GpuSnapshot, phase: ServerPhase = ServerPhase.GENERATING, busy: float | None = None
) -> MetricsSnapshot:
    history = History(300, 1)
    for v in (10.0, 20.0, 21.8):
        history.append("generation_tokens_per_s", v)
    host = HostSnapshot(
        cpu_percent=50.0,
        cpu_percent_per_core=(50.0, 50.0),
        ram_total_bytes=64 * GIB,
        ram_used_bytes=40 * GIB,
        ram_available_bytes=24 * GIB,
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_in_bytes_per_s=0.0,
        swap_out_bytes_per_s=0.0,
        swapping=False,
        server=ProcessSample(pid=1, alive=True, cpu_percent=1450.0, rss_bytes=30 * GIB, threads=17),
    )
    server = ServerSample(
        phase=phase,
        generation_tokens_per_s=21.78 if phase is ServerPhase.GENERATING else 0.0,
        generation_tokens_per_busy_s=busy,
        prompt_tokens_per_s=0.0,
        kv_fill_ratio=0.25,
        kv_used_tokens=50_000,
    )
    return MetricsSnapshot(time_s=0.0, gpu=gpu, host=host, server=server, moe=None, history=history)


NO_GPU = GpuSnapshot(available=False, reason="no NVIDIA GPU")
ONE_GPU = GpuSnapshot(
    available=True,
    devices=(
        GpuDeviceSample(
            index=0,
            name="NVIDIA GeForce RTX 4090",
            vram_total_bytes=24 * GIB,
            vram_used_bytes=int(23.5 * GIB),
            server_vram_bytes=22 * GIB,
            gpu_util_percent=87.0,
            power_w=310.0,
            temperature_c=66.0,
            pcie_gen=4,
            pcie_width=16,
            pcie_link_bytes_per_s=31.5e9,
            pcie_rx_bytes_per_s=5.2e9,
            pcie_tx_bytes_per_s=0.1e9,
        ),
    ),
)


def test_tiles_without_gpu_say_so() -> None:
    t = metrics_view.tiles(_snap(NO_GPU))
    assert t["vram"].text == "no NVIDIA GPU" and t["pcie"].text == "no NVIDIA GPU"
    assert t["gen"].text == "21.8 t/s\nlive"
    assert t["ram"].text.startswith("40.0 GiB / 64.0 GiB")
    assert "CPU 1450 %" in t["proc"].text
    assert "no NVIDIA GPU" in metrics_view.strip(_snap(NO_GPU))


def test_tiles_with_a_gpu() -> None:
    t = metrics_view.tiles(_snap(ONE_GPU))
    assert t["vram"].text == "23.5 GiB / 24.0 GiB\nserver 22.0 GiB"
    assert t["vram"].level == "high"  # 98 % full
    assert t["pcie"].text.startswith("rx 5.2 GB/s · tx 100.0 MB/s\nlink 31.5 GB/s Gen4 x16")
    assert t["gpu"].text == "87 % · 310 W · 66 °C"
    assert t["kv"].text == "25 % · 50,000 tokens"


def test_idle_shows_last_request_speed() -> None:
    value, note = metrics_view.speed(_snap(NO_GPU, ServerPhase.IDLE, busy=2547.0), "generation")
    assert (value, note) == (2547.0, "last request")
    assert metrics_view.tiles(_snap(NO_GPU, ServerPhase.IDLE))["gen"].text == "–"


def test_lost_gpu() -> None:
    lost = GpuSnapshot(available=True, devices=(GpuDeviceSample(index=0, lost=True),))
    assert metrics_view.tiles(_snap(lost))["vram"].text == "GPU lost"


class _Host(App[None]):
    def compose(self) -> ComposeResult:
        yield MetricsStrip()
        yield Dashboard()


async def test_dashboard_renders_at_80x24_and_200x60() -> None:
    for size in ((80, 24), (200, 60)):
        app = _Host()
        async with app.run_test(size=size) as pilot:
            app.query_one(Dashboard).show(_snap(ONE_GPU))
            app.query_one(MetricsStrip).show(_snap(ONE_GPU))
            await pilot.pause()
            tiles = list(app.query(MetricTile))
            assert len(tiles) == len(metrics_view.TILES)
            vram = app.query_one("#tile-vram", MetricTile)
            assert vram.has_class("high")
            assert vram.text.startswith("23.5 GiB")
            assert vram.render_line(0).text.startswith("23.5 GiB / 24.0 GiB")
            assert vram.render_line(1).text.startswith("server 22.0 GiB")


class _Sampler:
    """Stands in for the metrics sampler: records what the app asks of its pace."""

    def __init__(self) -> None:
        self.factors: list[int] = []

    def set_slow(self, factor: int) -> None:
        self.factors.append(factor)


async def test_samplers_slow_down_and_cursor_stops_while_no_core_is_idle(
    offline_config: Config, store: HistoryStore
) -> None:
    """With every core busy (llama-server's threads on all of them) the samplers tick every 2 s,
    every snapshot they send is shown, and the prompt's cursor stops blinking; with a core free
    again, all of it comes back."""
    shown: list[float] = []
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.screen
        assert isinstance(main, MainScreen)
        sampler = _Sampler()
        app.metrics.sampler = sampler  # type: ignore[assignment]
        main.show_metrics = lambda snap: shown.append(snap.time_s)  # type: ignore[method-assign]
        prompt = main.query_one(PromptInput)
        base = _snap(ONE_GPU)
        assert base.host is not None and prompt.cursor_blink

        def snap(t: float, per_core: tuple[float, ...]) -> MetricsSnapshot:
            host = replace(base.host, cpu_percent_per_core=per_core)  # type: ignore[type-var]
            return replace(base, time_s=t, host=host)

        for t in (1.0, 3.0, 5.0):  # 2 cores at 80 % and 90 % leave 0.3 idle: saturated
            app.post_message(MetricsUpdated(snap(t, (80.0, 90.0))))
            await pilot.pause()
        assert app.metrics.pace.saturated and sampler.factors == [2]
        assert shown == [1.0, 3.0, 5.0] and not prompt.cursor_blink
        for t in (6.0, 7.0):  # 1.5 cores idle: calm again
            app.post_message(MetricsUpdated(snap(t, (50.0, 0.0))))
            await pilot.pause()
        assert not app.metrics.pace.saturated and sampler.factors == [2, 1]
        assert shown[-2:] == [6.0, 7.0] and prompt.cursor_blink


async def test_a_request_after_one_that_took_every_core_slows_the_samplers_at_once(
    offline_config: Config, store: HistoryStore
) -> None:
    """The tick that sees a request start measured a window that was partly idle. When the
    server's previous work took every core, the samplers slow at that tick, not one later."""
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        sampler = _Sampler()
        app.metrics.sampler = sampler  # type: ignore[assignment]

        def snap(t: float, phase: ServerPhase, per_core: tuple[float, ...]) -> MetricsSnapshot:
            base = _snap(ONE_GPU, phase)
            host = replace(base.host, cpu_percent_per_core=per_core)  # type: ignore[type-var]
            return replace(base, time_s=t, host=host)

        ticks = [
            (1.0, ServerPhase.IDLE, (10.0, 0.0)),
            (2.0, ServerPhase.GENERATING, (50.0, 40.0)),  # the start: 1.1 cores idle
            (3.0, ServerPhase.GENERATING, (100.0, 100.0)),  # a whole window: none idle
            (5.0, ServerPhase.GENERATING, (100.0, 100.0)),
            (6.0, ServerPhase.IDLE, (20.0, 10.0)),
            (7.0, ServerPhase.GENERATING, (50.0, 40.0)),  # the next start: slowed at once
        ]
        factors = []
        for t, phase, per_core in ticks:
            app.post_message(MetricsUpdated(snap(t, phase, per_core)))
            await pilot.pause()
            factors.append(list(sampler.factors))
        assert factors == [[], [], [2], [2], [2, 1], [2, 1, 2]]


async def test_the_cursor_does_not_blink_under_another_screen(
    offline_config: Config, store: HistoryStore
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        prompt = app.screen.query_one(PromptInput)
        assert prompt.cursor_blink and prompt.blink_timer._active.is_set()
        await pilot.press("f4")
        await pilot.pause()
        assert not prompt.cursor_blink and not prompt.blink_timer._active.is_set()
        await pilot.press("escape")
        await pilot.pause()
        assert prompt.cursor_blink


def test_bar_levels_scale_each_bucket_maximum() -> None:
    from coder_tui.ui.widgets.tile_sparkline import bar_levels

    assert bar_levels([], 5) == [] and bar_levels([1.0], 0) == []
    assert bar_levels([3.0], 3) == [7, 7, 7]  # one sample: full bars
    assert bar_levels([2.0, 2.0], 2) == [0, 0]  # flat: at the bottom
    assert bar_levels([0.0, 10.0, 5.0, 0.0], 2) == [7, 3]  # the max of each half
    assert bar_levels([0.0, 7.0], 4) == [0, 0, 7, 7]  # fewer samples than columns


def test_sparkline_strip_draws_one_segment_per_shade() -> None:
    from textual.color import Color

    from coder_tui.ui.widgets.tile_sparkline import sparkline_strip

    data = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0, 7.0, 7.0, 7.0)
    strip = sparkline_strip(data, 12, Color(0, 0, 80), Color(0, 0, 255))
    assert strip.text == "▁▂▃▄▅▆▇█████" and strip.cell_length == 12
    assert len(list(strip)) <= 4  # one segment per shade, not one per bar
    assert sparkline_strip((), 5, Color(0, 0, 0), Color(9, 9, 9)).text == "▁" * 5


def test_value_rows_wrap_like_a_two_row_static() -> None:
    from coder_tui.ui.widgets.tile import value_rows

    assert value_rows("21.8 t/s\nlive", 20) == ["21.8 t/s", "live"]
    assert value_rows("rx 5.2 GB/s · tx 100.0 MB/s\nlink 31.5 GB/s", 16) == [
        "rx 5.2 GB/s · tx",
        "100.0 MB/s",
    ]
    assert value_rows("–", 10) == ["–"]


class OneTile(App[None]):
    """A single tile, alone on a small screen."""

    def compose(self) -> ComposeResult:
        yield MetricTile("gen", id="tile-gen")


async def test_tile_repaints_only_on_change_and_reuses_its_sparkline() -> None:
    app = OneTile()
    async with app.run_test(size=(24, 7)) as pilot:
        tile = app.query_one(MetricTile)
        assert tile.unavailable and tile.render_line(0).text.startswith("–")
        tile.show("21.8 t/s\nlive", (1.0, 2.0, 3.0), level="warn")
        await pilot.pause()
        assert tile.has_class("warn") and not tile.unavailable
        assert [tile.render_line(y).text.rstrip() for y in range(2)] == ["21.8 t/s", "live"]
        spark = tile.render_line(2)
        assert set(spark.text) <= set("▁▂▃▄▅▆▇█") and spark.cell_length == 20
        assert tile.render_line(2) is spark  # same history: the same strip
        tile.show("21.8 t/s\nlive", (1.0, 2.0, 9.0))
        assert tile.render_line(2) is not spark
        assert not tile.has_class("warn")


async def test_busy_refresh_zero_keeps_the_samplers_at_their_rate(
    offline_config: Config, store: HistoryStore
) -> None:
    config = replace(offline_config, chat=replace(offline_config.chat, busy_refresh_s=0.0))
    app = CoderApp(config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        sampler = _Sampler()
        app.metrics.sampler = sampler  # type: ignore[assignment]
        base = _snap(ONE_GPU)
        busy_host = replace(base.host, cpu_percent_per_core=(100.0, 100.0))  # type: ignore[type-var]
        for t in (1.0, 2.0, 3.0):
            app.post_message(MetricsUpdated(replace(base, time_s=t, host=busy_host)))
            await pilot.pause()
        assert not app.metrics.pace.saturated and sampler.factors == []
        assert app.screen.query_one(PromptInput).cursor_blink


def _decoding_snap() -> MetricsSnapshot:
    """A snapshot whose ``/slots`` read shows one request decoding: 12 prompt tokens, 40 out."""
    from coder_tui.core.metrics.types import SlotSample

    slot = SlotSample(
        id=0,
        n_ctx=4096,
        is_processing=True,
        phase=ServerPhase.GENERATING,
        task_id=7,
        prompt_tokens_processed=12,
        tokens_decoded=40,
    )
    base = _snap(ONE_GPU)
    assert base.server is not None
    return replace(base, server=replace(base.server, slots_available=True, slots=(slot,)))


class _Turn:
    """A quiet turn's ``offer_slots``: records what it is offered, answers ``count``."""

    def __init__(self, count: object = None) -> None:
        self.offered: list[object] = []
        self.count = count

    def offer_slots(self, slots: object) -> object:
        from coder_tui.core.chat.quiet_reply import slot_progress

        self.offered.append(slot_progress(slots))  # type: ignore[arg-type]
        return self.count


async def test_a_quiet_reply_gets_the_samplers_slots_under_the_dashboard(
    offline_config: Config, store: HistoryStore
) -> None:
    """The token count of a quiet reply comes from the metrics sampler's /slots read whichever
    screen shows, so the reply need not poll /slots itself while F4 is open."""
    from coder_tui.ui.screens.dashboard import DashboardScreen
    from coder_tui.ui.widgets.chat_turn import TurnRenderer
    from coder_tui.ui.widgets.chat_view import ChatView

    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.screen
        assert isinstance(main, MainScreen)
        turn = _Turn()
        main._renderer = TurnRenderer(main.query_one(ChatView), turn)  # type: ignore[arg-type]
        await pilot.press("f4")
        assert isinstance(app.screen, DashboardScreen)
        app.post_message(MetricsUpdated(_decoding_snap()))
        await pilot.pause()
        main._renderer = None
    assert turn.offered == [(12, 40)]


async def test_an_offered_token_count_is_shown_with_the_tiles(
    offline_config: Config, store: HistoryStore, seeded: int
) -> None:
    """The quiet reply's count from the sampler's /slots read goes on screen in the same handler
    as the tiles (one screen update a tick, not a second one when the turn yields it)."""
    from coder_tui.core.chat.events import DecodeProgress
    from coder_tui.ui.widgets.chat_turn import TurnRenderer
    from coder_tui.ui.widgets.chat_view import ChatView
    from coder_tui.ui.widgets.message import MessageView

    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        view = main.query(MessageView).last()
        turn = _Turn(DecodeProgress(40, 3.2))
        renderer = TurnRenderer(main.query_one(ChatView), turn)  # type: ignore[arg-type]
        renderer.view = view
        main._renderer = renderer
        app.on_metrics_updated(MetricsUpdated(_decoding_snap()))
        # no await: the line changed within the handler that showed the tiles
        assert "40 tokens after 3 s" in str(view.query_one(".stats").render())
        assert turn.offered == [(12, 40)]
        main._renderer = None


async def test_a_tile_repaints_only_its_changed_rows_and_follows_style_changes() -> None:
    """A new value repaints the value rows, new history the sparkline row, never the border;
    the colors it keeps between repaints follow a theme switch."""
    app = OneTile()
    async with app.run_test(size=(24, 7)) as pilot:
        tile = app.query_one(MetricTile)
        tile.show("1 t/s", (1.0, 2.0))
        await pilot.pause()
        regions: list[tuple[object, ...]] = []
        original = tile.refresh

        def spy(*args: object, **kwargs: object) -> object:
            regions.append(args)
            return original(*args, **kwargs)  # type: ignore[arg-type]

        tile.refresh = spy  # type: ignore[method-assign]
        tile.show("2 t/s", (1.0, 2.0))
        tile.show("2 t/s", (1.0, 2.0, 3.0))
        width = tile.content_size.width
        assert [tuple((r.y, r.height, r.width) for r in args) for args in regions] == [  # type: ignore[attr-defined]
            ((0, 2, width),),
            ((2, 1, width),),
        ]
        before = next(iter(tile.render_line(2))).style
        app.theme = "nord" if app.theme != "nord" else "gruvbox"
        await pilot.pause()
        assert next(iter(tile.render_line(2))).style != before
