"""How long the local stack takes to be up and deployed, and a warm request's end-to-end time.

Run after `make build` (the stack deploys .aws-sam/build). Baselines in the same run: a bare moto
server start (the floor under "up"), and one Converse call straight to the emulator (the floor under a
request's end-to-end time).
"""

import statistics
import time

from _stack import StackDriver, converse_directly, start_stack, summary
from moto.server import ThreadedMotoServer
from xpi_tools.local.stack import free_port

RUNS = 3
WARM_REQUESTS = 20


def main() -> None:
    bare = []
    for _ in range(RUNS):
        started = time.perf_counter()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        server.start()
        bare.append(time.perf_counter() - started)
        server.stop()

    ups, deploys = [], []
    for _ in range(RUNS - 1):
        stack = start_stack()
        ups.append(stack.timings["up_s"])
        deploys.append(stack.timings["deploy_s"])
        stack.stop()

    stack = start_stack()
    ups.append(stack.timings["up_s"])
    deploys.append(stack.timings["deploy_s"])
    driver = StackDriver(stack)
    try:
        first = driver.wait(driver.send(1), timeout_s=60)[0]  # cold: every function starts its runtime
        warm = []
        for _ in range(WARM_REQUESTS):  # one at a time, so each is a warm request on its own
            warm += driver.wait(driver.send(1), timeout_s=60)
        direct, _ = converse_directly(stack, calls=WARM_REQUESTS, threads=1)
    finally:
        driver.close()
        stack.stop()

    print(
        f"local stack up and deployed ({RUNS} runs)   median {statistics.median(ups):5.2f} s   "
        f"runs {', '.join(f'{u:.2f}' for u in ups)} s   (goal < 10 s)"
    )
    print(f"  of which deploy (translate + CloudFormation)   median {statistics.median(deploys):5.2f} s")
    print(f"  baseline: bare moto server start                median {statistics.median(bare):5.2f} s")
    print(f"first request end to end (cold runtimes)          {first:8.1f} ms")
    print(f"warm request end to end ({WARM_REQUESTS} sequential)          {summary(warm)}")
    print(f"  baseline: Converse straight to the emulator     {summary(direct)}")


if __name__ == "__main__":
    main()
