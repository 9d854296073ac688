import sys

import dsv3

with dsv3.Model(sys.argv[1]) as model, model.context() as ctx:
    prompt = sys.argv[2] if len(sys.argv) > 2 else "Once upon a time"
    for tok in ctx.stream(prompt, max_tokens=64, sampler=dsv3.Sampler(temperature=0.7, seed=1)):
        print(tok.text, end="", flush=True)
print()
