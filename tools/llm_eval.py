"""Figures for the LLM captions and composer against a real small model on a real local server.

Captions: the real director (models/captions/director.py) with the one-call LLM backend (`LlmFacets`, the
director's own prompt and checks) over real HTTP, on changing music; counts the captions credited to
the LLM, the failures by reason, and projected captions whose facets echo the prompt's instructions
(must be 0). Composer: `LlmComposer` phrase requests for the skimage pictures; counts melodies
credited to the LLM, the fallbacks by reason, and credited melodies that copy the prompt's example or
a corpus tune (must be 0). Schema "on" asks for JSON by `response_format` json_schema, "off" asks
for free text (on the transformers route "off" also runs the server without schema support, so the
refusal is exercised); grammar "on" asks for ABC by a GBNF grammar (taken by llama.cpp, refused by
the transformers route, which then gets free ABC), "off" asks for free ABC. One server per model.

The director runs on a simulated clock that stands still while an answer is awaited: the figures are
about what the model answers, not how fast (the answer times are printed as measured).

    python tools/llm_eval.py --model smollm2 --route llama.cpp --captions 50 --phrases 20 --schema both --grammar both
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

import local_llm  # noqa: E402


def _reason(error: str) -> str:
    """A failure's kind, without the answer's own words."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|(?<!HTTP )\b\d+(\.\d+)?\b", "…", error)[:90]


def caption_figures(url: str, model: str, count: int, timeout_s: float, schema: bool = True) -> dict:
    from installation.config import CaptionsConfig
    from installation.records import MusicState
    from models.captions.llm import _ECHO, LlmFacets
    from models.captions.banks import FACETS
    from models.captions.director import Director
    from scenes.scene import load_scene

    llm = LlmFacets(url, model, timeout_s)
    llm.constrained = schema
    cfg = CaptionsConfig(backend="llm", llm_url=url, llm_model=model, llm_timeout_s=min(30.0, timeout_s), min_hold_s=0.3).settings()
    director = Director(cfg, load_scene("nocturne"), llm=llm)
    # Never rest: every request is a sample.
    llm._failures_before_rest = 10 ** 9
    sources: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    echoes: list[str] = []
    latencies: list[float] = []
    seen_results = 0
    poll = llm.poll

    def counting_poll(request_id: int):
        nonlocal seen_results
        result = poll(request_id)
        if result is not None:
            seen_results += 1
            latencies.append(result.latency_s)
            if result.facets is None:
                errors[_reason(result.error)] += 1
            if seen_results % 10 == 0:  # a running tally: a run stopped early still has its figures
                print(f"    ... {seen_results} answers, {llm.stats['ok']} usable; published {dict(sources)}; "
                      f"echoes {len(echoes)}; failures {dict(errors.most_common())}", flush=True)
        return result
    llm.poll = counting_poll  # type: ignore[method-assign]

    t_s, hop = 0.0, 0
    while llm.stats["requests"] < count or seen_results < llm.stats["requests"]:
        i = int(t_s)  # a new mood each simulated second
        v = [0.7, -0.6, 0.2, -0.2, 0.9, -0.9, 0.4][i % 7]
        a = [0.6, -0.5, 0.1, 0.8, -0.8, 0.3, -0.2][(i * 3) % 7]
        state = MusicState(t_s=t_s, valence=v, arousal=a, mode="major" if (i % 3) else "minor",
                           loudness_dbfs=-30 + 20 * (a + 1) / 2, silent=False, section_change=True)
        caption = director.update(state, t_s)
        if caption is not None and hop > 0:
            sources[caption.source] += 1
            for f in FACETS:
                if _ECHO.echo(caption.facets[f]):
                    echoes.append(f"{f}: {caption.facets[f]}")
        hop += 1
        if seen_results < llm.stats["requests"] or llm._request is not None:
            time.sleep(0.05)  # the simulated clock waits for the answer
        else:
            t_s += 0.02
    director.close()
    llm.close()
    return {"requests": llm.stats["requests"], "llm_ok": llm.stats["ok"], "published": dict(sources),
            "errors": dict(errors.most_common()), "echoes": echoes, "latency_s": sorted(latencies),
            "constrained": llm.constrained}


def phrase_figures(url: str, model: str, count: int, timeout_s: float, grammar: bool = True) -> dict:
    import skimage.data

    from installation.config import ComposeConfig
    from installation.records import ImageState
    from models.composing.composer import Composer
    from models.composing.llm import LlmComposer
    from models.language.checks import TuneCopyCheck
    from scenes.scene import load_scene

    pictures = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera", "moon", "coins",
                "horse", "brick", "grass"]
    moods = [(0.6, 0.4), (0.3, -0.4), (0.5, 0.0), (0.7, 0.8), (-0.2, -0.6), (-0.4, 0.2), (-0.5, -0.7), (0.1, 0.5),
             (0.4, 0.6), (-0.3, 0.0), (0.2, -0.3)]
    # The example is the corpus tune picked by mood (no retrieval): the sentence model's load would
    # time out on a loaded machine, and the model's part is the same either way.
    composer = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=3)
    llm = LlmComposer(composer, url, model, timeout_s=timeout_s, retries=0, vision=False, grammar=grammar)
    written, errors, copies, latencies = 0, collections.Counter(), [], []
    corpus = TuneCopyCheck((p.source, p.events) for ps in composer.table.by_source.values() for p in ps)
    write = llm._write

    def checked_write(image, frame, preview, example, started, budget):
        melody, why = write(image, frame, preview, example, started, budget)
        latencies.append(time.monotonic() - started)
        if melody is not None:  # credited to the LLM: checked again here, against the example and the corpus
            from models.composing.llm import InvalidAbc, abc_to_phrase
            try:
                shown = abc_to_phrase(example, preview.key, preview.metre)
            except InvalidAbc:
                shown = ()
            notes = [n for n in melody if n[0] is not None]
            if shown and notes == [n for n in shown if n[0] is not None]:
                copies.append("the example, note for note")
            elif corpus.copied(melody):
                copies.append(corpus.copied(melody))
        else:
            errors[_reason(why)] += 1
        return melody, why
    llm._write = checked_write  # type: ignore[method-assign]

    t_s = 0.0
    for i in range(count):
        name, (v, a) = pictures[i % len(pictures)], moods[(i * 5) % len(moods)]
        getattr(skimage.data, name)()  # the picture exists; the text model gets its description
        image = ImageState(t_s=t_s, valence=v, arousal=a, brightness=0.5, dominant_hues_deg=(30.0 * len(name),),
                           description=f"A photograph: {name.replace('_', ' ')}.")
        while not composer.at_phrase_start:
            t_s = composer.plan(image, t_s).end_s
        plan = llm.plan(image, t_s)
        credited = any(r.startswith("melody written by the LLM") for r in plan.reasons)
        written += credited
        print(f"    ... phrase {llm.stats['phrases']}: {written} credited so far; {len(copies)} credited copies; "
              f"this one: {'credited' if credited else _reason(llm.last_error)}", flush=True)
        t_s = plan.end_s
    return {"phrases": llm.stats["phrases"], "written": written, "fallbacks": llm.stats["fallbacks"],
            "constrained": llm.stats["constrained"], "grammar_kept": llm.grammar,
            "errors": dict(errors.most_common()), "copies_credited": copies, "latency_s": sorted(latencies)}


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2] if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2, gemma3 or a .gguf path")
    parser.add_argument("--route", default="transformers", choices=local_llm.ROUTES)
    parser.add_argument("--captions", type=int, default=50)
    parser.add_argument("--phrases", type=int, default=11)
    parser.add_argument("--schema", default="both", choices=["on", "off", "both"])
    parser.add_argument("--grammar", default="both", choices=["on", "off", "both"])
    parser.add_argument("--timeout-s", type=float, default=300.0, help="per answer; generous: quality, not speed")
    parser.add_argument("--max-tokens", type=int, default=400, help="server-side default cap on each answer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # A stopped run still stops its server (the context manager's exit runs on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    modes = {"on": [True], "off": [False], "both": [True, False]}
    threads = "1 thread" if args.route == "llama.cpp" else "1 torch thread"
    print(f"# {args.model} via {args.route} ({threads}); the director's clock is simulated (it stands still while "
          f"an answer is awaited); answer times are real; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for schema in modes[args.schema] if args.captions else []:
        # On the transformers route "off" is a server without schema support: the refusal is exercised too.
        with local_llm.serve(args.model, args.route, schema=schema or args.route != "transformers",
                             max_tokens=args.max_tokens, log_path=_log(args)) as url:
            c = caption_figures(url, args.model, args.captions, args.timeout_s, schema)
        published = sum(c["published"].values())
        print(f"{args.model} schema={'on' if schema else 'off'} captions: {c['llm_ok']}/{c['requests']} LLM answers "
              f"usable ({100 * c['llm_ok'] / max(1, c['requests']):.0f} %); published {published}: {c['published']} "
              f"(llm share {100 * c['published'].get('llm', 0) / max(1, published):.0f} %); "
              f"projected facets echoing the instructions: {len(c['echoes'])}; "
              f"answer time median {_median(c['latency_s']):.1f} s; schema sent at the end: {c['constrained']}",
              flush=True)
        for why, n in c["errors"].items():
            print(f"    {n:3d} x {why}", flush=True)
        for e in c["echoes"]:
            print(f"    ECHO {e}", flush=True)
    if args.phrases:
        with local_llm.serve(args.model, args.route, max_tokens=args.max_tokens, log_path=_log(args)) as url:
            for grammar in modes[args.grammar]:
                p = phrase_figures(url, args.model, args.phrases, args.timeout_s, grammar)
                print(f"{args.model} grammar={'on' if grammar else 'off'} phrases: {p['written']}/{p['phrases']} "
                      f"melodies credited to the LLM ({100 * p['written'] / max(1, p['phrases']):.0f} %); answers "
                      f"shaped by the grammar: {p['constrained']}; credited copies of the example or a corpus tune: "
                      f"{len(p['copies_credited'])}; answer time median {_median(p['latency_s']):.1f} s", flush=True)
                for why, n in p["errors"].items():
                    print(f"    {n:3d} x {why}", flush=True)
    print(f"# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return 0


def _log(args) -> Path:
    return Path(tempfile.gettempdir()) / f"llm_eval_{Path(args.model).stem}_{args.route}.log"


if __name__ == "__main__":
    raise SystemExit(main())
