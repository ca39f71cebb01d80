"""POS drop folder: CSV and JSON-lines exports picked up from a folder, one Basket per receipt."""
