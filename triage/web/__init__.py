"""The web layer: Flask app factory and blueprints."""
