"""Typed settings, queue names and routing, logging, monitoring config. The leaf package."""
