"""Float64 oracle of lm-evaluation-harness `loglikelihood` requests on the reference model
(reference.py), written from lm-eval's definition, not from the C++ code:

    whole = (context + continuation)[-(T + 1):]     # cut from the left
    inp   = whole[:-1]                              # what the model reads (at most T tokens)
    logits of the last len(continuation) positions of inp predict the continuation;
    loglikelihood = sum of log_softmax(logits)[continuation token]
    is_greedy     = every continuation token is the argmax of its row

Also the smallest top-1 minus top-2 logit margin over those rows, so a caller can tell a
near-tie (where float32 may pick the other token) from a wrong argmax.
"""
import torch


@torch.no_grad()
def score(model, context, continuation, T):
    """(loglikelihood, is_greedy, min_margin) of one request of token-id lists."""
    n = len(continuation)
    assert 1 <= n <= T and len(context) >= 1
    whole = (list(context) + list(continuation))[-(T + 1):]
    inp = whole[:-1]
    logits = model(torch.tensor([inp]))[0, -n:]  # [n, V] float64
    tgt = torch.tensor(continuation)
    logp = torch.log_softmax(logits, dim=-1).gather(1, tgt[:, None])[:, 0]
    top = torch.topk(logits, 2, dim=-1).values
    greedy = bool((logits.argmax(dim=-1) == tgt).all())
    return float(logp.sum()), greedy, float((top[:, 0] - top[:, 1]).min())


def mean_stderr(xs):
    """lm-eval's stderr of a mean: sample standard deviation (n - 1) / sqrt(n)."""
    n = len(xs)
    m = sum(xs) / n
    return (sum((x - m) ** 2 for x in xs) / (n - 1)) ** 0.5 / n ** 0.5


def multiple_choice(lls, lengths, gold):
    """(acc, acc_norm) of one item: argmax (first maximal index) of lls and of lls / lengths."""
    def argmax(xs):
        return max(range(len(xs)), key=lambda i: (xs[i], -i))
    norm = [ll / n for ll, n in zip(lls, lengths)]
    return float(argmax(lls) == gold), float(argmax(norm) == gold)
