"""``dreamstyle serve``: the web page (the optional extra ``dreamstyle[web]``, Gradio)."""

from __future__ import annotations

import shutil
import time

import click

from .group import main
from .run import sigterm_as_interrupt


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every network interface; anyone who reaches it can run jobs).",
)
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--device", default=None, help="Run the jobs on this device (auto, cpu, cuda, cuda:N) [default: auto].")
def serve(host, port, device):
    """Open a local web page for style transfer, DeepDream, the hybrid and textures.

    One run at a time on the device; other visitors wait in a queue and see their place in it.
    Needs Gradio: pip install 'dreamstyle[web]'. Stop with Ctrl-C."""
    from ..web import serve as start

    page, url, folder = start(host, port, device)  # without Gradio: one line naming the extra
    click.echo(f"dreamstyle: the page is at {url} (files in {folder}); Ctrl-C stops it", err=True)
    try:
        with sigterm_as_interrupt():  # SIGTERM stops it as Ctrl-C does: the folder is removed
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        page.close()
        shutil.rmtree(folder, ignore_errors=True)
