"""Prepare the training corpus: clean, split into stories, hold out 5%,
tokenize with DeepSeek-V3's tokenizer, write token streams.

  /usr/bin/python3 tools/train/data.py [--corpus FILE] [--work DIR]

Output in WORK: data.npz with
  train, heldout        int32 token streams; every story is BOS ids... EOS
  heldout_starts        offset of each held-out story in `heldout`
  used_ids              sorted ids that occur in the training stream (incl. BOS, EOS)
and data.json (counts and provenance).
"""
import argparse
import hashlib
import json
import os
import re

import numpy as np

import common

# Text that was UTF-8, decoded as Windows-1252 and then lower-cased
# (e.g. a right single quote shows up as "â€™"). Mapped to plain ASCII.
MOJIBAKE = [
    ("\u00e2\u20ac\u0153", '"'),   # left double quote
    ("\u00e2\u20ac\u2122", "'"),   # right single quote
    ("\u00e2\u20ac\u02dc", "'"),   # left single quote
    ("\u00e2\u20ac\u201c", "-"),   # en dash
    ("\u00e2\u20ac\u201d", "-"),   # em dash
    ("\u00e2\u20ac\u00a6", "..."),  # ellipsis
    ("\u00e2\u20ac", '"'),         # right double quote (its last byte was lost)
    ("\u00e2\u00ab", '"'),         # guillemets
    ("\u00e2\u00bb", '"'),
    ("\u201c", '"'), ("\u201d", '"'), ("\u2018", "'"), ("\u2019", "'"),
]

HELDOUT_EVERY = 20   # story k is held out iff k % 20 == 19 (5%)


OPENING = re.compile(r"(once|one (day|morning|sunny|night|evening|afternoon|time))\b")


def split_stories(text):
    """Paragraphs inside a story are mostly separated by blank lines; a story
    ends where a non-empty line is followed directly by the next one. Some
    stories also contain single line breaks, so a segment is glued back to
    the previous story unless it opens like a story ("once ...", "one day")
    or is long (>= 300 chars) and does not start with a quote."""
    stories = []
    for seg in re.split(r"(?<=[^\n])\n(?=[^\n])", text):
        if not seg.strip():
            continue
        s = seg.strip()
        new = OPENING.match(s) or (len(s) >= 300 and not s.startswith('"'))
        if new or not stories:
            stories.append(seg)
        else:
            stories[-1] += "\n" + seg
    return stories


def clean(story):
    for a, b in MOJIBAKE:
        story = story.replace(a, b)
    story = re.sub(r"[ \t]+\n", "\n", story)
    story = re.sub(r"\n{3,}", "\n\n", story)
    return story.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/work/shared/data/tinystories-lower.txt")
    ap.add_argument("--work", default="/work/artifacts/dsv3-tiny-stories-work")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    raw = open(args.corpus, "rb").read()
    sha = hashlib.sha256(raw).hexdigest()
    stories = split_stories(raw.decode("utf-8"))
    train, held = [], []
    dropped = 0
    for k, s in enumerate(stories):
        s = clean(s)
        if len(s) < 40 or not s.isascii():
            dropped += 1
            continue
        (held if k % HELDOUT_EVERY == HELDOUT_EVERY - 1 else train).append(s)
    ids_train = common.encode(train)
    ids_held = common.encode(held)

    def stream(lists):
        starts, out = [], []
        for ids in lists:
            starts.append(len(out))
            out.append(common.BOS)
            out.extend(ids)
            out.append(common.EOS)
        return np.array(out, dtype=np.int32), np.array(starts, dtype=np.int64)

    tr, _ = stream(ids_train)
    he, he_starts = stream(ids_held)
    used = np.unique(np.concatenate([tr, np.array([common.BOS, common.EOS], np.int32)]))
    held_oov = int((~np.isin(he, used)).sum())
    np.savez(os.path.join(args.work, "data.npz"), train=tr, heldout=he,
             heldout_starts=he_starts, used_ids=used.astype(np.int32))
    info = {
        "corpus": os.path.basename(args.corpus), "corpus_sha256": sha,
        "stories_in_corpus": len(stories), "stories_dropped": dropped,
        "train_stories": len(train), "heldout_stories": len(held),
        "train_tokens": int(tr.size), "heldout_tokens": int(he.size),
        "used_ids": int(used.size), "heldout_tokens_outside_used_ids": held_oov,
        "heldout_rule": "story index k (0-based, in corpus order) held out iff k %% %d == %d"
                        % (HELDOUT_EVERY, HELDOUT_EVERY - 1),
    }
    with open(os.path.join(args.work, "data.json"), "w") as f:
        json.dump(info, f, indent=2)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
