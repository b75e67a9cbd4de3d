"""Dashboard tiles from metrics snapshots: texts, GPU and no-GPU states, narrow and wide layouts."""

from __future__ import annotations

from dataclasses import replace

from tests.fakes.metrics_payloads import Replay
from tests.fakes.metrics_snapshots import NO_GPU, ONE_GPU
from tests.fakes.metrics_snapshots import moe_snapshot as _moe_snap
from tests.fakes.metrics_snapshots import snapshot as _snap
from textual.app import App, ComposeResult

from coder_tui.core.config.loader import Config, Profile
from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig
from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.types import (
    GpuDeviceSample,
    GpuSnapshot,
    MetricsSnapshot,
    ServerPhase,
)
from coder_tui.core.server.events import ServerState, StateChanged
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui import format as fmt
from coder_tui.ui import metrics_view
from coder_tui.ui.app import CoderApp
from coder_tui.ui.messages import MetricsUpdated, ServerEventMessage
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.tile import MetricTile
from coder_tui.ui.widgets.tile_grid import Dashboard, MetricsStrip


def test_tiles_without_gpu_say_so() -> None:
    t = metrics_view.tiles(_snap(NO_GPU))
    assert t["vram"].text == "no NVIDIA GPU" and t["pcie"].text == "no NVIDIA GPU"
    assert t["gen"].text == "21.8 t/s now"
    assert t["ram"].text.startswith("40.0 GiB / 64.0 GiB")
    assert "CPU 1450 %" in t["proc"].text
    assert "no NVIDIA GPU" in metrics_view.strip(_snap(NO_GPU))


def test_tiles_with_a_gpu() -> None:
    t = metrics_view.tiles(_snap(ONE_GPU))
    assert t["vram"].text == "23.5 GiB / 24.0 GiB\nserver 22.0 GiB"
    assert t["vram"].level == "high"  # 98 % full
    assert t["pcie"].text.startswith("rx 5.2 GB/s · tx 100.0 MB/s\nlink 31.5 GB/s Gen4 x16")
    assert t["gpu"].text == "util 87 %\n310 W · 66 °C"
    assert t["kv"].text == "25 % · 50,000 tokens"


def test_idle_shows_now_and_the_last_request_each_for_what_it_is() -> None:
    idle = metrics_view.tiles(_snap(NO_GPU, ServerPhase.IDLE, busy=2547.0))["gen"]
    assert idle.text == "0.0 t/s now\nlast request 2547 t/s"
    assert idle.history is not None and idle.history[-1] == 0.0  # the graph ends on "now"
    assert metrics_view.tiles(_snap(NO_GPU, ServerPhase.IDLE))["gen"].text == "0.0 t/s now"


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


def test_graph_columns_end_at_now_and_keep_gaps_blank() -> None:
    from coder_tui.ui.widgets.tile_sparkline import columns

    assert columns([], 5, 10) == [None] * 5  # no data: every column empty
    assert columns([1.0, 2.0], 4, 8) == [None, None, 1.0, 2.0]  # 2 s of an 8 s window: right
    assert columns([0.0, 10.0, 5.0, 7.0, 0.0], 3, 5) == [10.0, 7.0, 0.0]  # buckets' maxima
    assert columns([1.0, None, None, 3.0], 4, 4) == [1.0, None, None, 3.0]  # gaps stay gaps
    # The right edge is the newest sample, the tile's number: a request that has just ended is a
    # bar one column back, not a full bar at "now" under "0.0 t/s now".
    assert columns([150.0, 0.0], 2, 4) == [150.0, 0.0]


def test_graph_rows_fill_from_the_bottom_against_the_scale() -> None:
    from coder_tui.ui.widgets.tile_sparkline import bar_rows, scale_top

    assert bar_rows([None, 0.0], 2, 1.0) == [[0, 0], [0, 0]]  # empty is empty, not a bar
    assert bar_rows([100.0, 50.0, 25.0], 2, 100.0) == [[8, 0, 0], [8, 8, 4]]
    assert scale_top([1.0, 4.0, None], None) == 4.0 and scale_top([1.0], 100.0) == 100.0
    assert scale_top([250.0], 100.0) == 250.0  # a process on more than one core


def test_axis_names_the_window_the_scale_and_now() -> None:
    from coder_tui.ui.widgets.tile_sparkline import axis_text

    text = axis_text(600, "0–21.8 t/s", 40)
    assert text.startswith("-10m") and text.endswith("now") and "0–21.8 t/s" in text
    assert len(text) == 40
    assert axis_text(600, "0–100 %", 10) == "-10m 0–100"  # too narrow: the window first


def test_value_rows_wrap_every_line_on_words() -> None:
    from coder_tui.ui.widgets.tile import value_rows

    assert value_rows("21.8 t/s\nlive", 20) == ["21.8 t/s", "live"]
    assert value_rows("rx 5.2 GB/s · tx 100.0 MB/s\nlink 31.5 GB/s", 16) == [
        "rx 5.2 GB/s · tx",
        "100.0 MB/s",
        "link 31.5 GB/s",
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
        assert set(spark.text) <= set(" ▁▂▃▄▅▆▇█") and spark.cell_length == 20
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


# -- issue 25: a dashboard that uses the screen --------------------------------------------------


def _tile_text(tile: MetricTile) -> str:
    return " ".join(
        tile.render_line(y).text.strip() for y in range(tile.content_region.height)
    ).strip()


class _Full(App[None]):
    def compose(self) -> ComposeResult:
        yield Dashboard(id="full")


async def test_full_dashboard_keeps_every_value_and_title_at_80x24(
    offline_config: Config, store: HistoryStore
) -> None:
    """At 80x24 the MoE tile lost ``in RAM · 1003.8 KiB/token`` and the GPU title was cut."""
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        snap = _moe_snap()
        app.post_message(MetricsUpdated(snap))
        await pilot.pause()
        data = metrics_view.tiles(snap)
        for tile in app.screen.query(MetricTile):
            key = (tile.id or "").removeprefix("tile-")
            words = " ".join(data[key].text.split())
            assert " ".join(_tile_text(tile).split()).startswith(words), key
            title = str(tile.border_title)
            assert len(title) + 4 <= tile.outer_size.width, title  # "╭─ title ─╮" uncut
        moe = _tile_text(app.screen.query_one("#tile-moe", MetricTile))
        assert "in RAM · 1003.8 KiB/token" in " ".join(moe.split())


async def test_graphs_grow_with_the_terminal_and_show_time_and_scale() -> None:
    """At 160x50 the dashboard used 22 rows and its graphs were one row with no axis."""
    app = _Full()
    async with app.run_test(size=(200, 60)) as pilot:
        app.query_one(Dashboard).show(_moe_snap())
        await pilot.pause()
        dashboard = app.query_one(Dashboard)
        assert dashboard.outer_size.height == 60  # the whole screen
        gen = app.query_one("#tile-gen", MetricTile)
        rows = [gen.render_line(y).text for y in range(gen.content_region.height)]
        assert gen.content_region.height >= 10
        axis = rows[-1]
        assert axis.startswith("-10m") and axis.rstrip().endswith("now") and "t/s" in axis
        bars = [r for r in rows[2:-1] if r.strip()]
        assert len(bars) >= 5  # 21.8 of a 21.8 scale: a full-height column at the right


async def test_an_empty_graph_is_empty() -> None:
    """Before any data the tiles drew full bars (``██████``) under ``–``."""
    app = _Full()
    async with app.run_test(size=(120, 40)) as pilot:
        snap = replace(_snap(ONE_GPU), history=History(600, 1))
        app.query_one(Dashboard).show(snap)
        await pilot.pause()
        for tile in app.query(MetricTile):
            text = _tile_text(tile)
            assert not set(text) & set("▁▂▃▄▅▆▇█"), tile.id


async def test_host_cpu_tile_shows_each_core_on_request(
    offline_config: Config, store: HistoryStore
) -> None:
    from coder_tui.ui.screens.dashboard import DashboardScreen

    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        assert isinstance(app.screen, DashboardScreen)
        busy = replace(_snap(ONE_GPU).host, cpu_percent_per_core=(0.0, 100.0))  # type: ignore[type-var]
        app.post_message(MetricsUpdated(replace(_snap(ONE_GPU), host=busy)))
        await pilot.pause()
        cpu = app.screen.query_one("#tile-cpu", MetricTile)
        assert cpu.text == "50 % of 2 threads"
        await pilot.press("c")
        await pilot.pause()
        assert cpu.text == "50 % of 2 threads\n▁█"
        await pilot.press("c")
        assert cpu.text == "50 % of 2 threads"


async def test_dashboard_keeps_the_serving_header_and_one_f4(
    offline_config: Config, store: HistoryStore
) -> None:
    """F4 lost the profile/status header; the footer showed ``F4 Back to chat`` and
    ``f4 Dashboard``."""
    from coder_tui.ui.screens.dashboard import DashboardScreen
    from coder_tui.ui.widgets.server_bar import ServerBar

    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        bar = screen.query_one(ServerBar)
        assert "q4_k_m" in str(bar.render()) and "stopped" in str(bar.render())
        assert bar.region.y == 0
        shown = {b.binding.description for b in screen.active_bindings.values() if b.binding.show}
        assert "Back to chat" in shown and "Dashboard" not in shown
        await pilot.press("f4")
        assert isinstance(app.screen, MainScreen)


def test_strip_fits_its_width_by_dropping_the_least_important() -> None:
    """At 80 columns the chat summary was cut mid-value (``KV 26``)."""
    snap = _moe_snap()
    full = metrics_view.strip(snap)
    assert len(full) > 78 and full.endswith("KV 25 %")
    fitted = metrics_view.strip(snap, 78)
    assert len(fitted) <= 78 and "KV 25 %" in fitted and fitted.startswith("gen 21.8 t/s now")
    assert "RAM-MoE" not in fitted  # the last in priority went first
    assert metrics_view.strip(snap, 16) == "gen 21.8 t/s now"  # never less than the speed


def test_history_reaches_back_ten_minutes() -> None:
    from coder_tui.core.metrics.bus import SamplerConfig

    assert History().seconds >= 600 and SamplerConfig().history_s >= 600


# -- issue 25: the tile's number is its graph's newest point; a new run forgets the last one ------

REQUEST = ["idle", "prompt", "generating_a", "generating_b", "after"]
"""``/metrics`` and ``/slots`` captured from the real llama-server over one request."""


def _number(tile: metrics_view.TileData) -> str:
    """The number a speed tile shows first, without what it says about it."""
    return tile.text.split("\n")[0].removesuffix(" now")


async def test_the_generation_number_is_the_graphs_newest_point_on_every_tick() -> None:
    """The graph plotted tokens per wall second over each interval, the number the running
    request's speed or the last request's: after a short request the tile said ``333 t/s`` over
    a graph whose scale ended at ``33.8 t/s``."""
    config = SamplerConfig(interval_s=0.01, server_interval_s=0)
    replay = Replay(list(REQUEST))
    sampler = MetricsSampler("http://x", config=config, client=replay.client())
    seen: list[tuple[str, str, str]] = []
    for _ in REQUEST:
        snap = await sampler.tick()
        for key in ("gen", "prompt"):
            tile = metrics_view.tiles(snap)[key]
            assert tile.history is not None
            newest = tile.history[-1] if tile.history else None
            seen.append((key, _number(tile), fmt.tokens(newest)))
    await sampler.aclose()
    assert all(number == graph for _, number, graph in seen), seen


async def test_a_new_server_run_never_shows_the_last_runs_speeds(
    offline_config: Config, store: HistoryStore
) -> None:
    """After a swap the dashboard still showed the old profile's ``515 t/s last request``."""
    other = Profile(name="q8_0", model=offline_config.profiles["q4_k_m"].model)
    config = replace(offline_config, profiles={**offline_config.profiles, "q8_0": other})
    app = CoderApp(config, autostart=False, store=store, sample_metrics=False)
    replay = Replay(list(REQUEST))
    sampler = MetricsSampler(
        "http://x",
        config=SamplerConfig(interval_s=0.01, server_interval_s=0),
        client=replay.client(),
    )
    async with app.run_test(size=(160, 50)) as pilot:
        app.metrics.sampler = sampler  # the worker's sampler, polling the captured payloads
        await pilot.press("f4")
        assert isinstance(app.screen, DashboardScreen)
        gen = app.screen.query_one("#tile-gen", MetricTile)
        for _ in REQUEST:
            app.post_message(MetricsUpdated(await sampler.tick()))
            await pilot.pause()
        # the request's 200 tokens in 7.55537 s
        assert "26.5 t/s" in gen.text and "last request" in gen.text

        app.post_message(ServerEventMessage(StateChanged(ServerState.STARTING, "q8_0", 0.0)))
        await pilot.pause()
        await pilot.pause()
        assert app.serving.label == "q8_0"
        assert gen.text == "–" and not any(v is not None for v in gen.history), gen.text
        replay.steps.append("idle")  # the new server answers: nothing of the old one
        app.post_message(MetricsUpdated(await sampler.tick()))
        await pilot.pause()
        assert "last request" not in gen.text and "26.5" not in gen.text, gen.text
        prompt = app.screen.query_one("#tile-prompt", MetricTile)
        assert "last request" not in prompt.text, prompt.text
    await sampler.aclose()


def test_the_strip_names_the_last_request_while_none_runs() -> None:
    idle = metrics_view.strip(_snap(NO_GPU, ServerPhase.IDLE, busy=2547.0))
    assert idle.startswith("gen 0.0 t/s now · last request 2547 t/s · prompt")
    assert "last request" not in metrics_view.strip(_snap(NO_GPU, ServerPhase.IDLE))
