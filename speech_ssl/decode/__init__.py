"""Decoding (greedy CTC, flashlight beam search with KenLM), n-gram LM building, and scoring."""
