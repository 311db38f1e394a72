"""The stages' work (pipeline/flow.py declares the graph) and the job bookkeeping they share."""
