"""Classify's Camera source: a snapshot, classified exactly like an upload (the Classify tab
wires it to the same handler), or the live webcam stream classified a few times a second
with its top 3, the 32x32 view and how many frames a second the server answers."""

import time

import gradio as gr

from cifar_demo import describe, images
from cifar_demo.ui.internals import CameraFrame, UploadedImage, camera_refusals_js

STREAM_EVERY = 0.4          # seconds between live frames the browser sends (about 2.5 frames/s)
LIVE_SECONDS = 120          # one live stream's time limit: it then stops and can be started again
LIVE_STREAMS = 5            # live streams served at once (each holds a queue slot while it runs)
LIVE_CONCURRENCY_ID = "camera-live"  # their own slots: they never take /classify's or a training run's
RATE_WINDOW = 5.0           # seconds of answered frames the frames/s figure is taken over
SEEN_SCALE = 4              # the live 32x32 view is shown at 128x128
# The rear camera on phones and tablets where there is one (any camera elsewhere); a VGA
# frame is plenty for a 32x32 input and keeps each live frame small. Gradio's device picker
# (under the video once the camera is on) switches cameras.
WEBCAM = gr.WebcamOptions(
    mirror=False,
    constraints={"video": {"facingMode": {"ideal": "environment"}, "width": {"ideal": 640}, "height": {"ideal": 480}}},
)
INPUT_FROM_CAMERA = "your camera snapshot from the Classify tab"
CAMERA_HINT = ("*Allow the camera when the browser asks. **Snapshot**: take a picture and it is classified like an "
               "upload. **Live**: press record and the model answers a few times a second "
               f"(for {LIVE_SECONDS // 60} minutes, then press it again).*")
NO_CAMERA = ("No camera could be used: {reason} Upload a photo or draw instead; on a phone, allow the camera for "
             "this site in the browser's settings.")


def frame_rate(times, now):
    """Answered frames per second over the last RATE_WINDOW seconds of `times` (monotonic
    seconds of answered frames, oldest first); 0.0 until two frames are in the window."""
    recent = [moment for moment in times if now - moment <= RATE_WINDOW]
    if len(recent) < 2 or recent[-1] == recent[0]:
        return 0.0
    return (len(recent) - 1) / (recent[-1] - recent[0])


def build(predictor):
    """Lays out the Camera source inside Classify's source tabs; returns its snapshot
    component (an UploadedImage giving a file path, as the upload does) and the tab, for
    the Classify tab to wire like its upload. The live part is wired here: it shows its own
    answer and does not change the session's current input (it changes several times a second)."""

    def classify_frame(frame, answered):
        """One live frame -> (top 3, the 32x32 view, the frames/s line, the session's answered
        frames: count and recent times). A frame that cannot be decoded is skipped, and the
        frames/s line says so: the stream goes on with the last answer shown."""
        if frame is None:
            return gr.skip(), gr.skip(), gr.skip(), answered
        count, times = answered or (0, [])
        try:
            pixels = images.to_model_input(frame)
        except ValueError:
            line = f"Live: a frame could not be read and was skipped; {count} answered so far"
            return gr.skip(), gr.skip(), line, answered
        now = time.monotonic()
        count, times = count + 1, [moment for moment in times if now - moment <= RATE_WINDOW] + [now]
        view = gr.update(value=images.upscale_nearest(pixels, SEEN_SCALE), alt_text=describe.model_input(pixels))
        line = f"Live: frame {count}, {frame_rate(times, now):.1f} frames/s answered"
        return predictor.label(pixels), view, line, (count, times)

    with gr.Tab("Camera", id="camera") as camera_tab:
        gr.HTML('<div class="camera-message" role="alert"></div>', elem_id="camera-message")
        gr.Markdown(CAMERA_HINT)
        mode = gr.Radio(["Snapshot", "Live"], value="Snapshot", label="Camera mode", elem_id="camera-mode")
        snapshot = UploadedImage(type="filepath", sources=["webcam"], webcam_options=WEBCAM, image_mode=None,
                                 label="Take a picture", elem_id="camera-snapshot", height=340)
        with gr.Group(visible=False) as live_group:
            live = CameraFrame(sources=["webcam"], streaming=True, webcam_options=WEBCAM, label="Live camera",
                               elem_id="camera-live", height=340)
            with gr.Row(equal_height=False):
                live_label = gr.Label(num_top_classes=3, label="Live: top 3", elem_id="live-label")
                live_seen = gr.Image(label="What the model sees (32x32)", interactive=False, height=140,
                                     format="png", elem_classes=["pixelated"], buttons=[], elem_id="live-seen")
            live_rate = gr.Markdown("", elem_id="live-rate")
    answered = gr.State()
    camera_tab.select(None, js=camera_refusals_js("#camera-message .camera-message", NO_CAMERA))
    mode.change(lambda choice: (gr.update(visible=choice == "Snapshot"), gr.update(visible=choice == "Live")),
                inputs=mode, outputs=[snapshot, live_group], api_visibility="private", show_progress="hidden")
    live.stream(classify_frame, inputs=[live, answered], outputs=[live_label, live_seen, live_rate, answered],
                stream_every=STREAM_EVERY, time_limit=LIVE_SECONDS, concurrency_limit=LIVE_STREAMS,
                concurrency_id=LIVE_CONCURRENCY_ID, api_name="classify_camera_stream", show_progress="hidden")
    return snapshot, camera_tab
