"""Text to records: split files and downloads, tokenizers, context-batched TFRecords, the
dataset build. Nothing here imports the model."""
