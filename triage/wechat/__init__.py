"""WeChat protocol pieces, split by concern as wechatpy does: crypto, parser, client, fake API."""
