"""The floor of any Streamlit rerun, for bench/bench_instant.py: one slider and one plotly bar chart, nothing else
(no model, no fragment, no session state). Every key-press on the slider costs a rerun and a plotly redraw."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

temperature = st.slider("Temperature", 0.05, 5.0, 1.0, 0.05, key="t")
logits = np.linspace(3.0, -3.0, 10)
probs = np.exp(logits / temperature)
probs /= probs.sum()
fig = go.Figure(go.Bar(x=probs, y=[f"token {i}" for i in range(10)], orientation="h"))
fig.update_layout(title="Next-token distribution", xaxis_title="probability", yaxis_title="token")
st.plotly_chart(fig, key="chart")
