"""A small TCP proxy for failure tests: forward, black-hole (swallow bytes, answer nothing, like a
network partition where the server keeps its data but never sees the requests), or shape the link
of one client address: slow (a delay each way) and lossy (this kernel has no netem qdisc)."""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass

RTO_S = 0.2  # Linux's least retransmission timeout: what a lost segment costs at the least


@dataclass(frozen=True)
class Shape:
    """A link's character, each direction: every chunk arrives `delay` seconds late; a `loss`
    share of them is lost once and arrives RTO_S later, with every byte behind it held too (TCP
    delivers in order: a lost segment stalls the stream until it is retransmitted)."""

    delay: float = 0.0
    loss: float = 0.0


UNSHAPED = Shape()  # a link as the machine has it: no delay, nothing lost


class Proxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.host = host  # the address it listens on (the target is on 127.0.0.1)
        self.blackhole = False
        self.shapes: dict[str, Shape] = {}  # client address -> its link's shape (set, cleared at will)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._carry(reader, writer)
        except asyncio.CancelledError:  # closed: ends quietly (asyncio logs a cancelled handler)
            writer.close()

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        client = str(writer.get_extra_info("peername")[0])
        await asyncio.gather(self._pipe(client, reader, up_writer), self._pipe(client, up_reader, writer))

    async def _pipe(self, client: str, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """One direction: each chunk written when due, in order (at once on an unshaped link)."""
        loop = asyncio.get_running_loop()
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(64)  # read no further ahead: flow control
        last = 0.0

        async def deliver() -> None:
            while (item := await due.get())[1]:
                await asyncio.sleep(item[0] - loop.time())
                dst.write(item[1])
                await dst.drain()

        delivering = loop.create_task(deliver())

        async def put(item: tuple[float, bytes]) -> None:
            if due.full():  # wait for room, or for the writer to have failed
                putting = loop.create_task(due.put(item))
                await asyncio.wait({putting, delivering}, return_when=asyncio.FIRST_COMPLETED)
                if not putting.done():
                    putting.cancel()
                    raise OSError("the link's far side is closed")
            else:
                due.put_nowait(item)

        try:
            while (data := await src.read(65536)) and not delivering.done():
                if self.blackhole:
                    continue
                shape = self.shapes.get(client, UNSHAPED)
                lost = RTO_S if shape.loss and random.random() < shape.loss else 0.0
                last = max(last, loop.time() + shape.delay + lost)
                await put((last, data))
            await put((last, b""))
            await delivering
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            delivering.cancel()
            dst.close()

    def close(self) -> None:
        """Drop every connection it carries and stop."""
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            self._thread.join(5)
