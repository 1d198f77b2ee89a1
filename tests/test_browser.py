"""The landing page in a real browser (Debian chromium, headless): a failing source stands out."""

from __future__ import annotations

import asyncio
import shutil

from aiohttp import web

from agent_session_exporter.app import Exporter
from agent_session_exporter.demo.runner import demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators
from agent_session_exporter.serve.server import make_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def chromium(tmp_path, *args: str) -> bytes:
    """Run headless chromium once; stopped by its PID if it outlives 60 s."""
    assert CHROMIUM, "chromium is not installed (.ci/run installs the Debian package)"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return stdout


async def test_a_failing_source_stands_out_on_the_landing_page(tmp_path, clock):
    simulators = Simulators(clock=clock, rate=1.0)
    simulators.factories["kapso"].set_error_weight(50)  # most Kapso executions fail
    simulators.backfill(600)
    async with running_simulators(simulators, tick_every=None) as base_url:
        exporter = Exporter(demo_config(base_url, listen="127.0.0.1:0"), clock=clock)
        await exporter.open()
        runner = web.AppRunner(make_app(exporter), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = "http://127.0.0.1:{}/".format(runner.addresses[0][1])
        try:
            for _ in range(3):
                clock.advance(5)
                simulators.tick()
                assert all((await exporter.run_once()).values())
            dom = (await chromium(tmp_path, "--dump-dom", url)).decode()
            shot = tmp_path / "landing.png"
            await chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1100", url)
        finally:
            await runner.cleanup()
            await exporter.close()
    assert '<tr class="failing"><td>demo-kapso</td>' in dom  # as the browser parsed it
    assert "Recent failures: demo-kapso" in dom
    assert dom.index("Recent failures: demo-kapso") < dom.index("Recent failures: demo-whatabot")  # failing first
    assert dom.count('<tr class="failing">') == 1  # the demo's other sources stay below the threshold
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
