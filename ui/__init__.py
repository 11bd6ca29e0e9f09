"""ragkb's Streamlit UI (`ragkb ui`): app.py with the chat and admin pages."""
