"""One line for a RAT/attention decode pair: the two `rat bench layer --mode decode --json`
outputs (bench/out/decode_pair_{rat,attention}.json), their ratio, and each against its byte bound.
Used by bench/sweep_decode.sh headline:  python3 bench/decode_pair_summary.py LABEL"""
import json
import sys

r = json.load(open("bench/out/decode_pair_rat.json"))
a = json.load(open("bench/out/decode_pair_attention.json"))
print(f"pair {sys.argv[1]}: RAT {r['ms']:.3f} ms vs attention {a['ms']:.3f} ms"
      f" = {a['ms'] / r['ms']:.2f}x; RAT at {r['ms'] / r['bound_ms']:.2f}x of its byte bound"
      f" ({r['bound_ms']:.3f} ms at {r['read_gbps']:.1f} GB/s), attention at"
      f" {a['ms'] / a['bound_ms']:.2f}x of its own")
