def main(argv: list[str], prog: str = "simulator") -> int:
    raise SystemExit("simulator not written yet")
