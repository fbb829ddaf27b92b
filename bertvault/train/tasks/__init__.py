"""Finetuning tasks and the loop they share (`bertvault finetune --task ...`, `bertvault evaluate glue`).

    loop.py            the task-agnostic loop: google's recipe, best epoch kept, resumable
    heads.py           task heads on the encoder; HF and TF1 exports
    sequence.py        sentence(-pair) classification and regression
    glue.py            the nine GLUE tasks as data: files, columns, labels, official scores
    glue_task.py       --task glue/<name>: a GLUE task through sequence.py
    glue_suite.py      `evaluate glue`: the BERT paper's learning-rate sweep, the score table
    squad_data.py      SQuAD JSON (v1.1, v2.0) and the Hub's Parquet, read and checked
    squad_features.py  google's features: WordPiece alignment, doc-stride windows, answer spans
    squad_decode.py    n-best span decoding, the text of an answer, the no-answer score
    squad_eval.py      the official SQuAD v1.1 / v2.0 scores
    squad.py           --task squad
    conll.py           CoNLL-style and JSONL tagged sentences
    tagging.py         tag schemes (IOB1, IOB2, BIOES) and entity scores (seqeval)
    tokens.py          --task token-classification
"""
