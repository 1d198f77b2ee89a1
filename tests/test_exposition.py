"""/metrics from cached per-source blocks: the same samples as one full render, and a scrape
renders no source that did not change."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from agent_session_exporter.serve.exposition import Exposition, split_families

from .helpers import check_exposition


class CountingRegistry(CollectorRegistry):
    """A registry that counts how often it is rendered."""

    def __init__(self) -> None:
        super().__init__(auto_describe=False)
        self.renders = 0

    def collect(self):
        self.renders += 1
        yield from super().collect()


def source_registry(name: str) -> tuple[CountingRegistry, Counter, Histogram]:
    registry = CountingRegistry()
    counter = Counter("demo_requests", "Requests.", ["source", "code"], registry=registry)
    histogram = Histogram("demo_seconds", "Durations.", ["source"], buckets=(1, 5), registry=registry)
    Gauge("demo_up", "Up.", ["source"], registry=registry).labels(name).set(1)
    counter.labels(name, "200").inc(3)
    histogram.labels(name).observe(2, exemplar={"session_id": f"{name}-1"})
    return registry, counter, histogram


def samples(text: str, openmetrics: bool) -> set[tuple]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value, s.exemplar.labels["session_id"] if s.exemplar else None)
        for family in parse(text)
        for s in family.samples
    }


def test_the_joined_blocks_hold_exactly_the_samples_of_a_full_render():
    global_registry, live = CollectorRegistry(), CollectorRegistry()
    Gauge("demo_build_info", "Build.", registry=global_registry).set(1)
    exposition = Exposition(global_registry, live)
    registries = {}
    for name in ("a", "b", "c"):
        registries[name] = source_registry(name)
        exposition.add_source(name, {"self": registries[name][0]})
    for openmetrics, generate in ((False, generate_latest), (True, generate_openmetrics)):
        joined = exposition.render(openmetrics).decode()
        expected = set().union(
            *(samples(generate(r).decode(), openmetrics) for r in [global_registry, *(r[0] for r in registries.values())])
        )
        if openmetrics:
            assert joined.endswith("# EOF\n") and joined.count("# EOF") == 1
        header = "# TYPE demo_requests counter\n" if openmetrics else "# TYPE demo_requests_total counter\n"
        assert joined.count(header) == 1 and joined.count("# TYPE demo_seconds histogram\n") == 1
        assert samples(joined, openmetrics) == expected
    assert samples(exposition.render(True).decode(), True) >= {
        ("demo_seconds_bucket", (("le", "5.0"), ("source", "b")), 1.0, "b-1")
    }


def test_a_scrape_renders_only_the_sources_that_changed():
    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    registries = {name: source_registry(name) for name in ("a", "b")}
    sessions = {name: CountingRegistry() for name in registries}
    for name, (registry, _, _) in registries.items():
        Gauge("demo_active", "Active.", ["source"], registry=sessions[name]).labels(name).set(2)
        exposition.add_source(name, {"self": registry, "sessions": sessions[name]})
    exposition.render()
    before = {name: r[0].renders for name, r in registries.items()}
    for _ in range(5):
        exposition.render()
    assert {name: r[0].renders for name, r in registries.items()} == before  # scrapes format nothing
    registries["a"][1].labels("a", "500").inc()
    sessions_before = sessions["a"].renders
    exposition.source_changed("a", everything=False)  # a cycle that changed no session
    text = exposition.render().decode()
    assert registries["a"][0].renders == before["a"] + 1 and registries["b"][0].renders == before["b"]
    assert sessions["a"].renders == sessions_before and 'demo_active{source="a"} 2.0' in text
    assert 'demo_requests_total{code="500",source="a"} 1.0' in text
    exposition.source_changed("a")
    assert sessions["a"].renders == sessions_before  # a cycle renders nothing: the next scrape does
    exposition.render()
    assert sessions["a"].renders == sessions_before + 1
    exposition.remove_source("b")
    assert 'source="b"' not in exposition.render().decode()


def test_a_change_is_rendered_once_per_format_scraped_and_never_while_nobody_scrapes():
    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    registry, counter, _ = source_registry("a")
    exposition.add_source("a", {"self": registry})
    assert registry.renders == 0
    exposition.render(openmetrics=True)
    assert registry.renders == 1
    for _ in range(3):  # three cycles between two scrapes
        counter.labels("a", "200").inc()
        exposition.source_changed("a", everything=False)
    assert registry.renders == 1
    assert 'demo_requests_total{code="200",source="a"} 6.0' in exposition.render(openmetrics=True).decode()
    assert registry.renders == 2
    exposition.render(openmetrics=True)
    assert registry.renders == 2
    assert 'demo_requests_total{code="200",source="a"} 6.0' in exposition.render().decode()  # the other format
    assert registry.renders == 3


def test_a_source_whose_render_fails_keeps_its_last_values_and_the_others_are_served(caplog):
    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    good, _, _ = source_registry("good")
    flaky, counter, _ = source_registry("flaky")
    exposition.add_source("good", {"self": good})
    exposition.add_source("flaky", {"self": flaky})
    before = exposition.render().decode()
    counter.labels("flaky", "200").inc()
    flaky.collect = lambda: iter([object()])  # not a metric: its render fails
    exposition.source_changed("flaky")
    text = exposition.render().decode()
    assert text == before and 'demo_requests_total{code="200",source="flaky"} 3.0' in text
    assert 'source="good"' in text


def test_split_families_keeps_headers_and_samples_apart():
    text = (
        b"# HELP x_total X.\n# TYPE x_total counter\nx_total 1.0\n# HELP y Y.\n# TYPE y gauge\n"
        b'# UNIT y seconds\ny{a="# HELP"} 2.0\n# EOF\n'
    )
    headers, blocks = split_families(text)
    assert headers == {
        "x_total": b"# HELP x_total X.\n# TYPE x_total counter\n",
        "y": b"# HELP y Y.\n# TYPE y gauge\n# UNIT y seconds\n",
    }
    assert blocks == {"x_total": b"x_total 1.0\n", "y": b'y{a="# HELP"} 2.0\n'}


def test_a_carriage_return_in_a_label_value_leaves_every_line_whole():
    """The text formats end lines with \\n only: a \\r in a label value (which prometheus_client
    writes as it is) must not cut a sample line in two, nor start a header line."""
    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    hostile = "run\r# HELP x_total X.\r# TYPE x_total counter\rx_total 1"
    registries = {}
    for name, status in (("a", hostile), ("b", "ok")):
        registries[name] = registry = CollectorRegistry()
        Gauge("demo_active", "Active.", ["source", "status"], registry=registry).labels(name, status).set(1)
        exposition.add_source(name, {"sessions": registry})
    for openmetrics in (False, True):
        families = check_exposition(exposition.render(openmetrics), openmetrics)
        assert {s.labels["status"] for f in families for s in f.samples} == {hostile, "ok"}
    headers, blocks = split_families(generate_latest(registries["a"]))
    assert list(headers) == list(blocks) == ["demo_active"]


async def test_a_scrape_renders_changed_sources_one_per_step_and_a_scrape_given_up_leaves_them_to_the_next():
    import asyncio

    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    registries = {name: source_registry(name) for name in "abcd"}
    for name, (registry, _, _) in registries.items():
        exposition.add_source(name, {"self": registry})
    steps = []

    async def count_steps() -> None:
        while True:
            steps.append(sum(r[0].renders for r in registries.values()))
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_steps())
    text = await exposition.render_async()
    assert text == exposition.render() and 'source="d"' in text.decode()
    assert [r[0].renders for r in registries.values()] == [1, 1, 1, 1]
    assert steps[:3] == [1, 2, 3]  # the loop ran between one render and the next
    for name in registries:
        registries[name][1].labels(name, "200").inc()
        exposition.source_changed(name, everything=False)
    scrape = asyncio.create_task(exposition.render_async())
    await asyncio.sleep(0)
    scrape.cancel()
    await asyncio.gather(scrape, return_exceptions=True)
    assert 1 <= sum(r[0].renders for r in registries.values()) - 4 < 4
    text = (await exposition.render_async()).decode()
    assert all(f'demo_requests_total{{code="200",source="{name}"}} 4.0' in text for name in registries)
    counter.cancel()


def test_the_gzip_of_a_scrape_is_the_text_compressed_from_blocks_compressed_once_each():
    import gzip
    import zlib

    from agent_session_exporter.serve import blocks as blocks_module

    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    registries = {name: source_registry(name) for name in ("a", "b", "c")}
    for name, (registry, _, _) in registries.items():
        exposition.add_source(name, {"self": registry})
    compressed = []
    real = blocks_module.deflated
    blocks_module.deflated = lambda data: compressed.append(data) or real(data)
    try:
        for openmetrics in (False, True):
            body = exposition.render_gzip(openmetrics)
            assert gzip.decompress(body) == exposition.render(openmetrics)
            assert zlib.decompress(body, 31) == exposition.render(openmetrics)  # one member, as Go's reader reads
        compressed.clear()
        registries["b"][1].labels("b", "404").inc()
        exposition.source_changed("b", everything=False)
        body = exposition.render_gzip()
        assert gzip.decompress(body) == exposition.render() and b'code="404",source="b"' in gzip.decompress(body)
        assert compressed and all(b'source="a"' not in data and b'source="c"' not in data for data in compressed)
        exposition.remove_source("a")
        assert b'source="a"' not in gzip.decompress(exposition.render_gzip())
        assert gzip.decompress(exposition.render_gzip()) == exposition.render()
    finally:
        blocks_module.deflated = real
