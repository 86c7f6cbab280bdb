"""500 requests through the local stack (SQS -> workflow -> emulator -> event), beside the same
number of Converse calls straight to the emulator, in one run.

End-to-end time is from SendMessageBatch to the result event arriving on the subscriber queue.
"""

import sys
import time

from _stack import StackDriver, converse_directly, start_stack, summary

REQUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 500
WARMUP = 20


def main() -> None:
    stack = start_stack()
    driver = StackDriver(stack)
    try:
        driver.wait(driver.send(WARMUP), timeout_s=120)
        started = time.perf_counter()
        ids = driver.send(REQUESTS)
        latencies = driver.wait(ids, timeout_s=900)
        elapsed = max(driver.done_at[i] for i in ids) - started
        statuses = {driver.status[i] for i in ids}
        direct, direct_elapsed = converse_directly(stack, calls=REQUESTS, threads=4)
    finally:
        driver.close()
        stack.stop()
    print(f"{REQUESTS} requests, {len(ids)} result events ({', '.join(sorted(statuses))})")
    print(f"through the pipeline   {REQUESTS / elapsed:7.1f} req/s   {summary(latencies)}")
    print(f"emulator directly      {REQUESTS / direct_elapsed:7.1f} req/s   {summary(direct)}   (4 threads)")


if __name__ == "__main__":
    main()
