"""Square webhooks (payment and refund events, orders fetched with RetrieveOrder): one Basket per sale or refund."""
