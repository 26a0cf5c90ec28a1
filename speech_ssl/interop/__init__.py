"""Reading and writing other toolkits' model formats (HF transformers, fairseq)."""
