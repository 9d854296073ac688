"""Chat with a model: render the conversation with its chat template, then
stream the answer greedily; Ctrl-C stops the answer, not the program.

usage: chat.py MODEL_DIR
"""
import sys

import dsv3


def main() -> None:
    with dsv3.Model(sys.argv[1], progress=lambda st, done, total: print(
            f"\rloading {100 * done // max(total, 1)}%", end="", file=sys.stderr)) as model:
        print(file=sys.stderr)
        history = [dsv3.Message("system", "You are a helpful assistant.")]
        with model.context() as ctx, dsv3.Sampler.greedy() as sampler:
            while True:
                try:
                    line = input("> ")
                except EOFError:
                    break
                history.append(dsv3.Message("user", line))
                ctx.clear()  # re-evaluate the whole conversation each turn
                prompt = model.apply_chat_template(history)
                answer = ""
                try:
                    with ctx.stream(prompt, add_bos=False, sampler=sampler, max_tokens=512) as st:
                        for tok in st:
                            answer += tok.text
                            print(tok.text, end="", flush=True)
                except KeyboardInterrupt:
                    pass  # leaving the with block canceled the generation
                print()
                history.append(dsv3.Message("assistant", answer))


if __name__ == "__main__":
    main()
