"""Which decoding to use by default: generation scores of a trained run under several decodings
(docs, "The model", "Generation"). Not a timing: it scores text.

    python benchmarks/decoding_sweep.py RUN [--samples 300] [--reviews 300]

RUN is a ``textvae-train --out`` folder. For each decoding it prints, as JSON lines, the
generation scores (:mod:`textvae.model.generation_metrics`) of ``--samples`` draws from the
prior, and of ``--reviews`` reviews of the IMDB test split (the first ones; IMDB found as the
CLI finds it: ``$TEXTVAE_IMDB``, ``shared/data/imdb`` or ``../shared/data/imdb``) encoded to
their latent mean and decoded back, with unigram F1 and BLEU-4 against their own text.
Everything is seeded.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

DECODINGS = {
    "greedy": {"temperature": 0.0},
    "T1.0 p1.0": {"temperature": 1.0, "top_p": 1.0},
    "T1.0 p0.95": {"temperature": 1.0, "top_p": 0.95},
    "T1.0 p0.9": {"temperature": 1.0, "top_p": 0.9},
    "T0.8 p0.9": {"temperature": 0.8, "top_p": 0.9},
    "T0.8 p0.95": {"temperature": 0.8, "top_p": 0.95},
    "T0.6 p0.9": {"temperature": 0.6, "top_p": 0.9},
    "T0.3 p0.9": {"temperature": 0.3, "top_p": 0.9},
}


def _reviews(count: int) -> list[str]:
    from synthetic import IMDB_DIR  # the CLI's search, from the repository's root

    from textvae.data.discover import open_corpus

    if IMDB_DIR is None:
        raise SystemExit("IMDB not found: set TEXTVAE_IMDB to a folder of IMDB's JSONL files")
    texts = []
    for text, _ in open_corpus(IMDB_DIR).reviews("test"):
        texts.append(text)
        if len(texts) == count:
            break
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--only", nargs="*", default=None, help="decodings to run (names)")
    args = parser.parse_args()

    from textvae.model.decoding import generate
    from textvae.model.generation_metrics import generated_texts, generation_scores
    from textvae.model.metrics import bleu, text_ids, unigram_f1
    from textvae.training import sample

    model, vocab, padding, truncating = sample.load_run(args.run)
    z_prior = np.random.default_rng(0).standard_normal((args.samples, model.latent))
    ids = sample.encode_texts(_reviews(args.reviews), vocab, model.max_len, padding, truncating)
    z_mean = np.asarray(model.encoder(ids, training=False)[0])
    references = [text_ids(row) for row in ids]
    for name, decoding in DECODINGS.items():
        if args.only and name not in args.only:
            continue
        prior = generate(model, z_prior.astype(np.float32), seed=0, **decoding)
        again = generate(model, z_mean, seed=0, **decoding)
        hypotheses = generated_texts(again)
        print(
            json.dumps(
                {
                    "decoding": name,
                    **{k: round(v, 4) for k, v in generation_scores(prior, "prior").items()},
                    **{k: round(v, 4) for k, v in generation_scores(again, "reconstruct").items()},
                    "reconstruct_unigram_f1": round(unigram_f1(hypotheses, references), 4),
                    "reconstruct_bleu4": round(bleu(hypotheses, references), 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
