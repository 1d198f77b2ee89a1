"""Prometheus exporter for AI-agent, chatbot and LLM-workflow session metrics."""

__version__ = "0.1.0"
