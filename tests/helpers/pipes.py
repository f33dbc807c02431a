"""A run's stdout and stderr as pipes a test reads in the background, to see the bytes a
writer puts out (and on which of the two)."""
from __future__ import annotations

import os
import threading
from typing import Dict, List


class Captured:
    """The run's stdout and stderr as pipes (one pipe if ``shared``), read in the background:
    :meth:`so_far` while they are open, :meth:`close` for the whole text."""

    def __init__(self, shared: bool = False):
        self.out_r, self.out_w = os.pipe()
        if shared:
            self.err_r, self.err_w = None, self.out_w
        else:
            self.err_r, self.err_w = os.pipe()
        self.data: Dict[str, str] = {}
        self.chunks: Dict[str, List[bytes]] = {"out": [], "err": []}
        self.threads = [threading.Thread(target=self._read, args=(name, fd))
                        for name, fd in (("out", self.out_r), ("err", self.err_r)) if fd is not None]
        for t in self.threads:
            t.start()

    def _read(self, name: str, fd: int) -> None:
        chunks = self.chunks[name]
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
        os.close(fd)
        self.data[name] = b"".join(chunks).decode()

    def so_far(self, name: str = "out") -> str:
        """What has come through pipe ``name`` ("out" or "err") up to now."""
        return b"".join(list(self.chunks[name])).decode(errors="replace")

    def close(self) -> Dict[str, str]:
        os.close(self.out_w)
        if self.err_w != self.out_w:
            os.close(self.err_w)
        for t in self.threads:
            t.join(10)
        return self.data
