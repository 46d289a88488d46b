"""Command handlers, grouped by subject. Each has the signature ``(ctx: Context) -> None``."""
