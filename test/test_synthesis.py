"""The synthesis branch's guided editing (paper 001, Algorithm 1) on toy epsilon-models."""

# Copyright 2026 The anomaly_perception Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

from anomaly_perception.branches.synthesis import detector as syn
import numpy as np
import pytest
import torch

diffusers = pytest.importorskip('diffusers')

T = 40
SHAPE = (2, 3, 4, 5)


def _scheduler(clip=True):
    return diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule='linear',
                                   beta_start=1e-3, beta_end=0.2, clip_sample=clip,
                                   variance_type='fixed_small', prediction_type='epsilon')


def _toy(x, t):
    """Return a non-linear epsilon-model with a timestep dependence."""
    return 0.5 * torch.tanh(x) + 0.01 * t * torch.sin(x)


def _linear(coef):
    """Return ``eps(x, t) = coef[t] x``: its reverse guidance has a closed form."""
    return lambda x, t: coef[t] * x


def _gaussian_ideal(scheduler):
    """Return the exact epsilon-model of N(0, I) data: ``E[eps | x_t] = sqrt(1 - abar_t) x_t``."""
    abar = scheduler.alphas_cumprod.double()
    return lambda x, t: (1 - abar[t]).sqrt().to(x) * x


@pytest.mark.parametrize('steps', [0, 8])
def test_without_guidance_the_step_is_the_schedulers_ancestral_step(steps):
    scheduler = _scheduler()
    timesteps = syn.schedule_timesteps(scheduler, steps)
    assert len(timesteps) == (T if steps == 0 else steps) and timesteps[-1] == 0
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1)) * 1.5
    target = torch.rand(SHAPE) * 2 - 1
    for t in timesteps:
        expected = scheduler.step(_toy(x, t), t, x,
                                  generator=torch.Generator().manual_seed(t)).prev_sample
        noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(t))
        for guidance, strength in (('none', 5.0), ('reverse', 0.0)):
            got = syn.guided_step(_toy, scheduler, x, t, target, guidance, strength, noise)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        x = expected


def test_one_reverse_guided_step_equals_the_hand_computed_update():
    scheduler = _scheduler(clip=False)
    syn.schedule_timesteps(scheduler, 0)
    coef = torch.linspace(0.1, 0.9, T, dtype=torch.float64)
    model = _linear(coef)
    rng = np.random.default_rng(0)
    x = rng.normal(size=SHAPE)
    x_in = rng.uniform(-1, 1, size=SHAPE)
    z = rng.normal(size=SHAPE)
    lam, t = 3.0, 17
    got = syn.guided_step(model, scheduler, torch.from_numpy(x), t, torch.from_numpy(x_in),
                          'reverse', lam, torch.from_numpy(z)).numpy()
    # By hand, DDPM's cumulative-alpha posterior, guidance evaluated at x_bar, level s = t - 1.
    abar = scheduler.alphas_cumprod.double().numpy()
    a_t, a_s, c_t, c_s = abar[t], abar[t - 1], float(coef[t]), float(coef[t - 1])
    x0 = (x - np.sqrt(1 - a_t) * c_t * x) / np.sqrt(a_t)
    beta = 1 - a_t / a_s
    x_bar = np.sqrt(a_s) * beta / (1 - a_t) * x0 + np.sqrt(a_t / a_s) * (1 - a_s) / (1 - a_t) * x
    var = (1 - a_s) / (1 - a_t) * beta
    d = (1 - np.sqrt(1 - a_s) * c_s) / np.sqrt(a_s)         # d mu0 / d x
    g = -2 * lam * (d * x_bar - x_in) * d
    np.testing.assert_allclose(got, x_bar + var * g + np.sqrt(var) * z, rtol=1e-10, atol=1e-12)


def test_the_three_guidances_differ_only_in_what_the_input_is_compared_with():
    scheduler = _scheduler(clip=False)
    syn.schedule_timesteps(scheduler, 0)
    ideal = _gaussian_ideal(scheduler)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    x_in = torch.rand(SHAPE, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    lam = 2.0
    abar = scheduler.alphas_cumprod.double()
    for t in (T - 1, 20, 1):
        eps = ideal(x, t)
        x_bar, var = syn.posterior_mean_variance(scheduler, eps, t, x)
        plain = syn.guided_step(ideal, scheduler, x, t, x_in, 'none', lam, z)
        step = {k: syn.guided_step(ideal, scheduler, x, t, x_in, k, lam, z)
                for k in ('reverse', 'forward', 'mismatched')}
        a_s = abar[t - 1]
        # Same x_bar and noise; only the guidance term differs.
        torch.testing.assert_close(step['mismatched'] - plain, var * -2 * lam * (x_bar - x_in))
        torch.testing.assert_close(step['forward'] - plain,
                                   var * -2 * lam * (x_bar - a_s.sqrt() * x_in))
        # Reverse matching through the exact model of N(0, I) data: mu0(x) = sqrt(abar_s) x,
        # so g = -2 lambda sqrt(abar_s) (sqrt(abar_s) x_bar - x_in): ~0 at high noise (g_T ~ 0,
        # the paper's argument), where the baselines pull hardest.
        torch.testing.assert_close(step['reverse'] - plain,
                                   var * -2 * lam * a_s.sqrt() * (a_s.sqrt() * x_bar - x_in))
        if t == T - 1:
            assert ((step['reverse'] - plain).abs().max()
                    < 0.1 * (step['forward'] - plain).abs().max())
    assert abar[T - 2].sqrt() < 0.2
    # The last step (t = 0 -> x_0) adds neither noise nor guidance: all four coincide.
    last = [syn.guided_step(ideal, scheduler, x, 0, x_in, k, lam, z) for k in syn.GUIDANCES]
    for other in last[1:]:
        torch.testing.assert_close(other, last[0])


def test_guided_edit_pulls_towards_the_input_and_respacing_runs_fewer_passes():
    scheduler = _scheduler()
    ideal = _gaussian_ideal(scheduler)
    calls = []

    def counted(x, t):
        calls.append(t)
        return ideal(x.double(), t).to(x.dtype)

    target = torch.rand(SHAPE, generator=torch.Generator().manual_seed(5)) * 2 - 1
    free = syn.guided_edit(counted, scheduler, target, syn.GuidanceConfig('none', 0.0))
    assert len(calls) == T
    calls.clear()
    ticks = []
    edit = syn.guided_edit(counted, scheduler, target, syn.GuidanceConfig('reverse', 20.0),
                           progress=lambda i, n: ticks.append((i, n)))
    assert len(calls) == 2 * T - 1 and ticks[-1] == (T, T)     # no guidance on the last step
    assert (edit - target).pow(2).mean() < 0.5 * (free - target).pow(2).mean()
    calls.clear()
    short = syn.guided_edit(counted, scheduler, target, syn.GuidanceConfig('reverse', 20.0,
                                                                           steps=10))
    assert len(calls) == 2 * 10 - 1 and torch.isfinite(short).all()
    again = syn.guided_edit(counted, scheduler, target, syn.GuidanceConfig('reverse', 20.0,
                                                                           steps=10))
    torch.testing.assert_close(again, short)


def test_bad_guidance_options_are_refused():
    with pytest.raises(syn.SynthesisError, match='one of reverse'):
        syn.GuidanceConfig('backward')
    with pytest.raises(syn.SynthesisError, match='>= 0'):
        syn.GuidanceConfig('reverse', -1.0)
    with pytest.raises(syn.SynthesisError, match='trained with 40'):
        syn.schedule_timesteps(_scheduler(), 41)


TINY_UNET = {'block_out_channels': [8, 16], 'down_block_types': ['DownBlock2D', 'DownBlock2D'],
             'up_block_types': ['UpBlock2D', 'UpBlock2D'], 'layers_per_block': 1,
             'norm_num_groups': 4}
TINY_SCHEDULER = {'num_train_timesteps': 20, 'beta_schedule': 'linear', 'beta_start': 1e-3,
                  'beta_end': 0.2, 'clip_sample': True}


def _tiny_config(**kw):
    from anomaly_perception.branches.synthesis.train import DiffusionTrainingConfig
    options = {'input_shape': (16, 24), 'steps': 6, 'batch_size': 4, 'warmup_steps': 2,
               'checkpoint_every': 3, 'sample_every': 3, 'sample_steps': 5, 'samples': 4,
               'val_frames': 4, 'unet': dict(TINY_UNET), 'scheduler': dict(TINY_SCHEDULER)}
    options.update(kw)
    return DiffusionTrainingConfig(**options)


def test_train_diffusion_resumes_to_the_same_weights_and_writes_a_model(tiny_pixel_data,
                                                                        tmp_path, monkeypatch):
    from anomaly_perception.branches.synthesis import train as diffusion
    from anomaly_perception.runtime.network import load_network
    config = _tiny_config()
    whole = diffusion.train_diffusion_model(tmp_path / 'a', tmp_path / 'wa', config,
                                            data=tiny_pixel_data, show_progress=False)
    assert [row['step'] for row in whole['metrics']['history']] == [3, 6]
    assert all(np.isfinite(row['loss']) and np.isfinite(row['val_loss'])
               for row in whole['metrics']['history'])
    assert sorted(p.name for p in (tmp_path / 'wa' / 'samples').iterdir()) == [
        'step_000003.png', 'step_000006.png']
    assert whole['branch'] == 'synthesis' and set(whole['files']) == {'ddpm.pt', 'samples.png'}
    # Interrupted after its first checkpoint, then run again: the same weights.
    real_save = diffusion.save_checkpoint

    def save_then_stop(path, state):
        real_save(path, state)
        raise KeyboardInterrupt
    monkeypatch.setattr(diffusion, 'save_checkpoint', save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        diffusion.train_diffusion_model(tmp_path / 'b', tmp_path / 'wb', config,
                                        data=tiny_pixel_data, show_progress=False)
    assert not (tmp_path / 'b').exists()
    monkeypatch.setattr(diffusion, 'save_checkpoint', real_save)
    resumed = diffusion.train_diffusion_model(tmp_path / 'b', tmp_path / 'wb', config,
                                              data=tiny_pixel_data, show_progress=False)
    assert resumed['metrics']['history'] == whole['metrics']['history']
    a, manifest = load_network(tmp_path / 'a', branch='synthesis')
    b, _ = load_network(tmp_path / 'b', branch='synthesis')
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert manifest['architecture']['type'] == 'ddpm_unet'
    # Other options on the same work directory are refused, naming the checkpoint.
    from anomaly_perception.training import TrainingError
    with pytest.raises(TrainingError, match='checkpoint.pt.*other options'):
        diffusion.train_diffusion_model(tmp_path / 'c', tmp_path / 'wb', _tiny_config(lr=1e-3),
                                        data=tiny_pixel_data, show_progress=False)


def test_train_diffusion_refuses_bad_options(tiny_pixel_data, tmp_path):
    from anomaly_perception.branches.synthesis.train import train_diffusion_model
    from anomaly_perception.training import TrainingError
    with pytest.raises(TrainingError, match='divisible by 2'):
        train_diffusion_model(tmp_path / 'm', tmp_path / 'w', _tiny_config(input_shape=(15, 24)),
                              data=tiny_pixel_data, show_progress=False)
    with pytest.raises(TrainingError, match='one of the two'):
        train_diffusion_model(tmp_path / 'm', tmp_path / 'w', _tiny_config(),
                              show_progress=False)


def test_rgb_ssim_and_feature_distances_by_hand():
    from anomaly_perception.branches.synthesis import analysis as an
    a = torch.zeros(1, 3, 16, 20)
    b = torch.ones(1, 3, 16, 20)
    torch.testing.assert_close(an.rgb_distance(a, b), torch.ones(1, 16, 20))
    torch.testing.assert_close(an.rgb_distance(a, a), torch.zeros(1, 16, 20))
    # Flat images: SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) (no variance, no covariance).
    m1, m2 = 0.2, 0.7
    c1 = 0.01 ** 2
    expected = (2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1)
    got = an.ssim_map(torch.full((1, 3, 16, 20), m1, dtype=torch.float64),
                      torch.full((1, 3, 16, 20), m2, dtype=torch.float64))
    torch.testing.assert_close(got, torch.full((1, 16, 20), expected, dtype=torch.float64))
    noisy = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(an.ssim_distance(noisy, noisy), torch.zeros(1, 16, 20),
                               rtol=0, atol=1e-5)
    # The image as its own feature space: cosine of RGB vectors, two scales averaged.
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    y = torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    cos = 1 / np.sqrt(2)
    both = an.feature_distance(lambda v: [v, _halved(v)], x, y)
    torch.testing.assert_close(both, torch.full((1, 8, 8), (1 - cos) / 2))


def _halved(v):
    return torch.nn.functional.avg_pool2d(v, 2)


def test_erfnet_features_at_four_scales_for_any_size():
    from anomaly_perception.branches.synthesis.analysis import ErfnetFeatures
    from anomaly_perception.branches.synthesis.analysis import feature_distance
    from anomaly_perception.models.erfnet import ERFNet
    torch.manual_seed(0)
    features = ErfnetFeatures(ERFNet(5))
    x = torch.rand(2, 3, 36, 60)
    maps = features(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 18, 30), (64, 9, 15), (128, 5, 8),
                                                  (16, 18, 30)]
    d = feature_distance(features, x, x.flip(-1))
    assert d.shape == (2, 36, 60) and (d >= 0).all() and (d <= 1).all() and d.mean() > 0
    assert feature_distance(features, x, x).abs().max() < 1e-5


def test_slic_follows_colour_edges_and_refinement_averages_segments():
    from anomaly_perception.branches.synthesis.analysis import refine_by_segments
    from anomaly_perception.branches.synthesis.analysis import slic_superpixels
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :23] = (200, 30, 30)
    image[:, 23:] = (30, 30, 200)
    labels = slic_superpixels(image, segments=12)
    assert labels.shape == (40, 60) and 6 <= labels.max() + 1 <= 12
    assert not set(np.unique(labels[:, :23])) & set(np.unique(labels[:, 23:]))
    distance = np.arange(6, dtype=np.float32).reshape(2, 3)
    segments = np.array([[0, 0, -1], [1, 1, 1]])
    np.testing.assert_allclose(refine_by_segments(distance, segments),
                               [[0.5, 0.5, 2.0], [4.0, 4.0, 4.0]])
    distance[1, 0] = np.nan
    np.testing.assert_allclose(refine_by_segments(distance, segments),
                               [[0.5, 0.5, 2.0], [4.5, 4.5, 4.5]])


def test_a_users_exported_feature_extractor_loads_and_a_bad_file_is_named(tmp_path):
    from anomaly_perception.branches.synthesis.analysis import feature_distance
    from anomaly_perception.branches.synthesis.analysis import load_feature_extractor
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.rand(1, 3, 8, 10)
    torch.export.save(torch.export.export(conv, (x,)), str(tmp_path / 'features.pt2'))
    extractor = load_feature_extractor(tmp_path / 'features.pt2')
    with torch.no_grad():
        expected = (1 - torch.nn.functional.cosine_similarity(conv(x), conv(1 - x), dim=1,
                                                              eps=1e-6)) / 2
    torch.testing.assert_close(feature_distance(extractor, x, 1 - x), expected)
    (tmp_path / 'broken.pt').write_bytes(b'not a model')
    with pytest.raises(syn.SynthesisError, match='broken.pt.*TorchScript'):
        load_feature_extractor(tmp_path / 'broken.pt')
    (tmp_path / 'broken.pt2').write_bytes(b'not a model')
    with pytest.raises(syn.SynthesisError, match='broken.pt2.*torch.export'):
        load_feature_extractor(tmp_path / 'broken.pt2')


@pytest.mark.parametrize('features,refine', [('rgb', 'none'), ('ssim', 'slic'),
                                             ('erfnet', 'slic'), ('erfnet', 'promptable')])
def test_the_synthesizer_maps_any_image_at_its_resolution(tiny_ddpm, tiny_pixel_model,
                                                          tiny_promptable, features, refine):
    from anomaly_perception.branches.synthesis.detector import AnomalySynthesizer
    from anomaly_perception.branches.synthesis.detector import SynthesisOptions
    options = SynthesisOptions(features=features, refine=refine, segments=20,
                               pixel_model=str(tiny_pixel_model), promptable=str(tiny_promptable),
                               grid=4, analysis_shape=(32, 48))
    synth = AnomalySynthesizer.from_model_dir(tiny_ddpm, options=options)
    assert synth.guidance.guidance == 'reverse' and synth.guidance.strength == 5.0
    image = np.random.default_rng(0).integers(0, 255, (90, 200, 3), dtype=np.uint8)
    result = synth.process(image)
    assert result.edit.shape == (16, 24, 3) and result.edit.dtype == np.uint8
    for m in (result.distance, result.anomaly):
        assert m.shape == (90, 200) and m.dtype == np.float32
    # The model's 3:2 crop of a 90x200 image: 135 px wide, x from 32 to 167; NaN outside it.
    inside = np.isfinite(result.anomaly)
    assert inside[:, 32:167].all() and not inside[:, :32].any() and not inside[:, 167:].any()
    assert (result.anomaly[inside] >= 0).all() and (result.distance[inside] <= 1).all()
    if refine == 'none':
        np.testing.assert_array_equal(result.anomaly, result.distance)
    elif refine == 'slic':
        assert not np.array_equal(result.anomaly[inside], result.distance[inside])
    else:
        from anomaly_perception.branches.synthesis.analysis import promptable_segments
        rgb = image[:32, :48]
        seg = promptable_segments(synth._segmenter, rgb, grid=4, min_iou=-1.0)
        assert seg.shape == (32, 48) and seg.dtype == np.int32
        assert seg.max() >= 0 and set(np.unique(seg)) <= set(range(-1, 16))
    again = AnomalySynthesizer.from_model_dir(tiny_ddpm, options=options).process(image)
    np.testing.assert_array_equal(again.anomaly, result.anomaly)


def test_synthesize_command_writes_maps_and_panels_and_refuses_other_models(
        tiny_ddpm, tiny_pixel_model, tiny_pixel_data, tmp_path, capsys):
    from anomaly_perception.cli import main
    images = sorted((tiny_pixel_data / 'test_set').iterdir())[:2]
    code = main(['synthesize', *map(str, images), '--model', str(tiny_ddpm), '--out',
                 str(tmp_path / 'o'), '--pixel-model', str(tiny_pixel_model), '--steps', '5',
                 '--guidance', 'forward', '--segments', '16'])
    assert code == 0
    written = sorted(p.name for p in (tmp_path / 'o').iterdir())
    stems = [p.stem for p in images]
    assert written == sorted([f'{s}.{k}' for s in stems for k in ('edit.png', 'anomaly.npy',
                                                                  'panel.png')]
                             + ['synthesis.json'])
    anomaly = np.load(tmp_path / 'o' / f'{stems[0]}.anomaly.npy')
    assert anomaly.shape == (64, 64) and anomaly.dtype == np.float32
    import json
    report = json.loads((tmp_path / 'o' / 'synthesis.json').read_text())
    assert report['guidance'] == {'guidance': 'forward', 'strength': 5.0, 'steps': 5}
    assert 'smaller than the model input' not in capsys.readouterr().out
    capsys.readouterr()
    code = main(['synthesize', str(images[0]), '--model', str(tiny_pixel_model), '--out',
                 str(tmp_path / 'p')])
    assert code == 1
    assert "holds a 'pixel' model, expected a 'synthesis' model" in capsys.readouterr().err
    from anomaly_perception.runtime.export import export_model
    from anomaly_perception.runtime.manifest import ModelError
    with pytest.raises(ModelError, match='runs offline in PyTorch'):
        export_model(tiny_ddpm)


def test_experiment_synthesis_rows_and_the_rgb_row_by_hand(tiny_ddpm, tiny_pixel_model,
                                                           tiny_promptable, tiny_pixel_data,
                                                           tmp_path):
    from anomaly_perception.branches.synthesis.detector import AnomalySynthesizer
    from anomaly_perception.branches.synthesis.detector import SynthesisOptions
    from anomaly_perception.branches.synthesis.experiments import experiment_frames
    from anomaly_perception.branches.synthesis.experiments import format_synthesis_report
    from anomaly_perception.branches.synthesis.experiments import run_synthesis_experiment
    from anomaly_perception.metrics.binary import binary_curve
    from anomaly_perception.runtime.preprocess import fit_resize
    options = SynthesisOptions(pixel_model=str(tiny_pixel_model), promptable=str(tiny_promptable),
                               segments=16, grid=4, analysis_shape=(32, 48), steps=4)
    report = run_synthesis_experiment(tiny_ddpm, tiny_pixel_data, tmp_path / 'x',
                                      options=options, every=8, limit=5, calib_frames=2,
                                      show_progress=False)
    assert set(report['rows']) == {'ssim', 'rgb', 'features', 'features + slic',
                                   'features + promptable', 'forward matching', 'mismatched',
                                   'pixel branch', 'instance branch'}
    for name, row in report['rows'].items():
        assert 0 <= row['auprc'] <= 1 and 0 <= row['auroc'] <= 1, name
    written = {p.name for p in (tmp_path / 'x').iterdir()}
    assert {'synthesis.json', 'synthesis.md', 'synthesis_pr.png'} <= written
    assert '| features + slic |' in format_synthesis_report(report)
    # The rgb row by hand: the reverse edit of each frame, RGB distance inside the crop.
    import cv2
    data, records = experiment_frames(tiny_pixel_data, every=8, limit=5)
    assert sum(r.is_anomaly for r in records) >= 2
    synth = AnomalySynthesizer.from_model_dir(tiny_ddpm, options=options)
    labels, scores = [], []
    for rec in records:
        rgb = cv2.cvtColor(cv2.imread(str(rec.path)), cv2.COLOR_BGR2RGB)
        small = fit_resize(rgb, synth.input_shape)
        edit = synth.edit(small[None])[0]
        m = synth.to_input(synth.distance(small, edit, 'rgb')[0], rgb.shape[:2])
        mask = data.root / 'masks' / f'{rec.path.stem}.png'
        label = (cv2.imread(str(mask), cv2.IMREAD_UNCHANGED) > 0 if mask.is_file()
                 else np.zeros(rgb.shape[:2], bool))
        keep = np.isfinite(m)
        labels.append(label[keep])
        scores.append(m[keep])
    expected = binary_curve(np.concatenate(labels), np.concatenate(scores)).average_precision()
    assert report['rows']['rgb']['auprc'] == pytest.approx(expected, abs=0.01)


def test_strength_sweep_chooses_the_best_lambda_on_validation(tiny_ddpm, tiny_pixel_model,
                                                              tiny_pixel_data, tmp_path, capsys):
    from anomaly_perception.branches.synthesis.detector import AnomalySynthesizer
    from anomaly_perception.branches.synthesis.detector import SynthesisOptions
    from anomaly_perception.branches.synthesis.experiments import experiment_frames
    from anomaly_perception.branches.synthesis.report import label_mask_for
    from anomaly_perception.cli import main
    from anomaly_perception.metrics.binary import binary_curve
    import cv2
    import json
    code = main(['experiment', 'synthesis-strength', '--model', str(tiny_ddpm), '--data',
                 str(tiny_pixel_data), '--out', str(tmp_path / 's'), '--every', '2',
                 '--limit', '6', '--strengths', '0,50', '--pixel-model', str(tiny_pixel_model),
                 '--segments', '16'])
    assert code == 0
    assert 'chosen lambda' in capsys.readouterr().out
    report = json.loads((tmp_path / 's' / 'strength.json').read_text())
    assert report['split'] == 'validation_set' and report['frames'] == 6
    assert [r['strength'] for r in report['rows']] == [0.0, 50.0]
    best = max(report['rows'], key=lambda r: r['auprc'])
    assert report['chosen'] == best['strength']
    assert (tmp_path / 's' / 'strength.png').stat().st_size > 0
    # The lambda-50 row by hand: the branch's map of each validation frame at that strength.
    synth = AnomalySynthesizer.from_model_dir(tiny_ddpm, options=SynthesisOptions(
        strength=50.0, pixel_model=str(tiny_pixel_model), segments=16))
    _, records = experiment_frames(tiny_pixel_data, 'validation_set', every=2, limit=6)
    labels, scores = [], []
    for rec in records:
        rgb = cv2.cvtColor(cv2.imread(str(rec.path)), cv2.COLOR_BGR2RGB)
        m = synth.process(rgb).anomaly
        mask = label_mask_for(rec.path)
        label = np.zeros(rgb.shape[:2], bool) if mask is None else mask
        keep = np.isfinite(m)
        labels.append(label[keep])
        scores.append(m[keep])
    expected = binary_curve(np.concatenate(labels), np.concatenate(scores)).average_precision()
    assert report['rows'][1]['auprc'] == pytest.approx(expected, abs=0.01)
    assert main(['experiment', 'synthesis-strength', '--data', str(tiny_pixel_data), '--out',
                 str(tmp_path / 't'), '--strengths', 'ten']) == 1
    # --save-to-model: the chosen lambda and the steps become the model's defaults.
    import shutil
    model = tmp_path / 'ddpm'
    shutil.copytree(tiny_ddpm, model)
    assert main(['experiment', 'synthesis-strength', '--model', str(model), '--data',
                 str(tiny_pixel_data), '--out', str(tmp_path / 'u'), '--every', '4', '--limit',
                 '3', '--strengths', '0,50', '--steps', '3', '--pixel-model',
                 str(tiny_pixel_model), '--segments', '16', '--save-to-model']) == 0
    chosen = json.loads((tmp_path / 'u' / 'strength.json').read_text())['chosen']
    synth = AnomalySynthesizer.from_model_dir(model, options=SynthesisOptions(
        pixel_model=str(tiny_pixel_model)))
    assert (synth.guidance.strength, synth.guidance.steps) == (chosen, 3)


def test_the_shipped_ddpm_loads_and_synthesize_runs_out_of_the_box(tmp_path, capsys):
    from anomaly_perception.cli import main
    from anomaly_perception.runtime.manifest import load_manifest
    from anomaly_perception.runtime.manifest import shipped_model_dir
    model = shipped_model_dir('synthesis_ddpm')
    manifest = load_manifest(model)         # verifies every file's sha256
    assert manifest['branch'] == 'synthesis'
    assert manifest['architecture']['type'] == 'ddpm_unet'
    assert sum(p.stat().st_size for p in model.iterdir()) <= 20 * 2 ** 20
    import cv2
    image = tmp_path / 'frame.png'
    rgb = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    cv2.imwrite(str(image), rgb)
    # No --model: the shipped DDPM; 3 respaced steps keep the test short.
    assert main(['synthesize', str(image), '--out', str(tmp_path / 'o'), '--steps', '3']) == 0
    anomaly = np.load(tmp_path / 'o' / 'frame.anomaly.npy')
    assert anomaly.shape == (360, 640) and np.isfinite(anomaly).mean() > 0.9
    edit = cv2.imread(str(tmp_path / 'o' / 'frame.edit.png'))
    assert edit.shape == (*manifest['preprocessing']['input_shape'], 3)


def test_a_diverging_edit_is_named_with_the_strength(tiny_ddpm, tiny_pixel_model, caplog):
    from anomaly_perception.branches.synthesis.detector import AnomalySynthesizer
    from anomaly_perception.branches.synthesis.detector import SynthesisOptions
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    calm = AnomalySynthesizer.from_model_dir(tiny_ddpm, options=SynthesisOptions(
        strength=0.0, pixel_model=str(tiny_pixel_model), refine='none'))
    with caplog.at_level('WARNING'):
        calm.process(image)
    assert 'saturated' not in caplog.text
    wild = AnomalySynthesizer.from_model_dir(tiny_ddpm, options=SynthesisOptions(
        strength=1e6, pixel_model=str(tiny_pixel_model), refine='none'))
    with caplog.at_level('WARNING'):
        result = wild.process(image)
        wild.process(image)
    assert np.mean((result.edit == 0) | (result.edit == 255)) > 0.5
    assert caplog.text.count('guidance strength 1e+06 is too strong') == 1
