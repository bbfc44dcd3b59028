"""Answering speed and memory (run by hand: `.venv/bin/python bench/bench_answers.py`).

Targets (issue 2): warm median under 2 ms on the shipped knowledge base, under
20 ms on a synthetic base of 5,000 topics, `ask` as a fresh process under 1.5 s,
resident set under 150 MB.
"""

from __future__ import annotations

import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.answers import compose  # noqa: E402
from assistant.core import Assistant  # noqa: E402
from assistant.knowledge import KnowledgeBase, Topic, TopicText  # noqa: E402
from assistant.matcher import Matcher  # noqa: E402
from assistant.settings import Settings  # noqa: E402

SYLLABLES = "ka ki ko ku la li lo lu ma mi mo mu na ni no nu pa pi po pu ra ri ro ru sa si so su ta ti to tu va vi vo vu ää öö".split()


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def synthetic_base(count: int, seed: int = 7) -> tuple[KnowledgeBase, list[str]]:
    """`count` topics of random words, and questions that are misspelt phrasings of them."""
    rng = random.Random(seed)
    base = KnowledgeBase()
    questions = []
    for n in range(count):
        words = [_word(rng) for _ in range(5)]
        phrasings = tuple(" ".join(rng.sample(words, 3)) + "?" for _ in range(6))
        text = TopicText(title=words[0], answer="answer " + " ".join(words),
                         questions=phrasings, keywords=tuple(words))
        base.topics[f"t{n}"] = Topic(id=f"t{n}", reviewed="2026-11-28", sources=("x",),
                                     links=(), texts={"fi": text, "sv": text, "en": text})
        if n % 10 == 0:
            q = list(rng.choice(phrasings))
            q[rng.randrange(len(q) - 1)] = rng.choice("aeiou")
            questions.append("".join(q))
    return base, questions


def median_ms(fn, items: list[str], matcher: Matcher, rounds: int = 3) -> float:
    """Median time of `fn(item)`; the matcher forgets its recent decisions and word readings
    before each call, so every round measures matching, not remembering (bench_core.py's
    mix measures both)."""
    timings = []
    for _ in range(rounds):
        for item in items:
            matcher._decide_words.cache_clear()
            matcher._word_readings.cache_clear()
            start = time.perf_counter()
            fn(item)
            timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp}/bench.db"})
    assistant = Assistant(settings)
    eval_questions = [line.split('q: "', 1)[1].split('"', 1)[0]
                      for line in (ROOT / "tests/eval/answer_quality.yaml").read_text("utf-8").splitlines()
                      if 'q: "' in line]
    shipped = median_ms(lambda q: compose(assistant, q, "fi"), eval_questions, assistant.matcher)
    print(f"shipped base ({len(assistant.knowledge)} topics): median {shipped:.3f} ms "
          f"over {len(eval_questions)} questions x3")
    rss_shipped = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    base, questions = synthetic_base(5000)
    matcher = Matcher(base)
    print(f"synthetic base: 5000 topics indexed in {time.perf_counter() - start:.1f} s")
    synthetic = median_ms(matcher.match, questions, matcher)
    print(f"synthetic base (5000 topics): median {synthetic:.3f} ms over {len(questions)} questions x3")
    print(f"peak RSS: {rss_shipped:.0f} MB with the shipped base, "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB after the synthetic one")
    fresh = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "assistant", "ask", "Miten teen kuntalaisaloitteen?"],
                       cwd=ROOT, check=True, capture_output=True,
                       env={"DATABASE_URL": f"sqlite:///{tmp}/ask.db", "PATH": "/usr/bin:/bin"})
        fresh.append(time.perf_counter() - start)
    print(f"`ask` as a fresh process: median {statistics.median(fresh):.2f} s (5 runs)")
    child = subprocess.run(
        [sys.executable, "-c", "import resource,sys; sys.argv=['x','ask','kuntalaisaloite'];"
         "from assistant.cli import main; main();"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"],
        cwd=ROOT, check=True, capture_output=True, text=True,
        env={"DATABASE_URL": f"sqlite:///{tmp}/ask.db", "PATH": "/usr/bin:/bin"})
    print(f"`ask` process peak RSS: {child.stdout.strip().splitlines()[-1]} MB")


if __name__ == "__main__":
    main()
