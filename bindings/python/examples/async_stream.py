"""Stream tokens into an asyncio program while other tasks keep running,
and stop the generation after a time limit.

usage: async_stream.py MODEL_DIR [PROMPT]
"""
import asyncio
import sys

import dsv3


async def generate(ctx: dsv3.Context, prompt: str) -> None:
    async for tok in ctx.astream(prompt, max_tokens=200, sampler=dsv3.Sampler.greedy()):
        print(tok.text, end="", flush=True)


async def main() -> None:
    prompt = sys.argv[2] if len(sys.argv) > 2 else "Once upon a time"
    with dsv3.Model(sys.argv[1]) as model, model.context() as ctx:
        try:
            # cancelling the task (here: the timeout) cancels the generation
            await asyncio.wait_for(generate(ctx, prompt), timeout=10)
        except asyncio.TimeoutError:
            print("\n[time limit]", end="")
        print()


if __name__ == "__main__":
    asyncio.run(main())
