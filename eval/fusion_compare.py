"""Fusion variants compared offline on the same dense and sparse lists the engine returns
(100 deep, no filter): DBSF as the engine computes it (w0.5 reproduces the engine's figures
exactly), weighted DBSF, p-norms, max + a x min (ragkb's `RAGKB_FUSION=max` is a=0.85), RRF.
eval/RESULTS.md §14 reports its output.

    RAGKB_HOME=~/.cache/ragkb-eval/docbench/home python eval/fusion_compare.py docbench
    python eval/fusion_compare.py scifact test   # needs /tmp/sf/home from `ragkb eval retrieval`
    python eval/fusion_compare.py scifact train
"""
import json
import sys
from pathlib import Path

from ragkb.config import Settings
from ragkb.eval.beir import load_beir
from ragkb.eval.docbench import contains
from ragkb.eval.metrics import evaluate_run, max_pool
from ragkb.eval.retrieval import doc_ids_by_content
from ragkb.runtime import Runtime
from ragkb.sparse import query_vector
from ragkb.store.fusion import normalised as norm


def variants(dense, sparse):
    nd, ns = norm(dense), norm(sparse)
    ids = set(nd)|set(ns)
    out={}
    for w in (0.5,0.6,0.7):
        out[f"dbsf_w{w}"] = sorted(ids, key=lambda i: -(w*nd.get(i,0)+(1-w)*ns.get(i,0)))
    for pp in (1.5,2,3):
        out[f"pnorm{pp}"] = sorted(ids, key=lambda i: -((max(nd.get(i,0),0)**pp+max(ns.get(i,0),0)**pp)**(1/pp)))
    for a in (0.25,0.5,0.7,0.85):
        out[f"max+{a}min"] = sorted(ids, key=lambda i: -(max(nd.get(i,0),ns.get(i,0))+a*min(nd.get(i,0),ns.get(i,0))))
    rd={h.id:r for r,h in enumerate(dense)}; rs={h.id:r for r,h in enumerate(sparse)}
    for k in (2,60):
        out[f"rrf{k}"] = sorted(ids, key=lambda i: -((1/(k+rd[i]+1) if i in rd else 0)+(1/(k+rs[i]+1) if i in rs else 0)))
    out["dense"]=[h.id for h in dense]; out["sparse"]=[h.id for h in sparse]
    return out

def search(rt, q, depth=100):
    v=rt.embedder.encode_query(q).tolist(); sp=query_vector(q)
    dense=rt.store.search(v,None,depth,None,"dense")
    sparse=rt.store.search(None,sp,depth,None,"sparse") if sp and sp[0] else []
    return dense, sparse

which=sys.argv[1]
if which=="docbench":
    rt=Runtime(Settings(), "docbench")
    qs=[json.loads(l) for l in open(str(Path(__file__).resolve().parent / 'docbench_questions.jsonl'))]
    score={}
    for q in qs:
        dense,sparse=search(rt,q['question'])
        byid={h.id:h for h in dense+sparse}
        for name, ranked in variants(dense,sparse).items():
            top=[byid[i] for i in ranked[:5]]
            ok=any(h.payload.get('locations') and any(l['path'].endswith(q['file']) for l in h.payload['locations']) and contains(h.payload.get('text',''),q['evidence']) for h in top)
            score.setdefault(name,[]).append(ok)
    for name,v in score.items(): print(name, round(sum(v)/len(v),3))
else:
    data=load_beir(Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'beir' / 'scifact', sys.argv[2] if len(sys.argv)>2 else 'test')
    rt=Runtime(Settings(home=Path('/tmp/sf/home')), "beir-scifact-minilm-whole")
    docmap=doc_ids_by_content(rt)
    runs={}
    for qid,q in data.queries.items():
        dense,sparse=search(rt,q)
        byid={h.id:h for h in dense+sparse}
        for name, ranked in variants(dense,sparse).items():
            runs.setdefault(name,{})[qid]=max_pool((docmap.get(byid[i].payload.get('doc_id'),[]), -r) for r,i in enumerate(ranked[:100]))
    for name,run in runs.items():
        m=evaluate_run(run,data.qrels); print(name, {k:round(v,4) for k,v in m.items() if 'ndcg@10' in k.lower() or 'recall@100' in k.lower()})
