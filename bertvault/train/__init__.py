"""Pretraining and finetuning BERT checkpoints on CPU, CUDA GPUs (torchrun) and TPUs (torch_xla).

    config.py         settings: defaults, TOML/YAML files, command-line overrides, model shapes
    devices.py        cpu / cuda / xla behind one small interface
    launch.py         re-launching the same command under torch.distributed.run
    checkpoint_io.py  any checkpoint -> BertForPreTraining weights + config + vocab; HF/TF1 export
    model.py          the pretraining module (MLM head on masked positions only)
    optim.py          AdamW / LAMB, parameter groups, warmup-then-decay schedules
    checkpoints.py    atomic training checkpoints, resume, retention
    metrics.py        metrics.jsonl, TensorBoard, live display, MFU
    pretrain_data.py  `--data` -> a training dataset
    pretrain.py       the pretraining loop
    tables.py         labelled CSV/TSV/JSONL files (GLUE as published)
    scores.py         accuracy, F1, Matthews, Pearson, Spearman
    finetune.py       `finetune`: settings, task dispatch, the best epoch exported
    tasks/            the finetuning tasks (sentence, GLUE, SQuAD, token classification) and their shared loop
"""
