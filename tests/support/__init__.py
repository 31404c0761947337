"""Helpers the tests share (never test modules importing each other)."""
