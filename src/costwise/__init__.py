"""costwise: cut what you pay for LLM APIs without changing how you write code."""
