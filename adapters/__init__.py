"""Platform adapters: console, Telegram and Matrix. They import the core, never the reverse."""
