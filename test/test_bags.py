"""ROS 2 bag reading and writing, both storage plugins and both type stores."""

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

import os
from pathlib import Path

from anomaly_perception.errors import BagError
from anomaly_perception.errors import TopicNotFoundError
from anomaly_perception.io.bag_writer import BagWriter
from anomaly_perception.io.bags import BagReader
from anomaly_perception.io.files import OutputExistsError
from anomaly_perception.io.images import numpy_to_compressed
from anomaly_perception.io.images import numpy_to_image
from conftest import write_image_bag
import numpy as np
import pytest

STORAGES = ['mcap', 'sqlite3']
DISTROS = ['humble', 'jazzy']


def _frames(n=4, h=6, w=8):
    return [np.full((h, w, 3), (10 * i, 100, 255 - i), np.uint8) for i in range(n)]


def _detections(f, header):
    det = f.new(
        'vision_msgs/msg/Detection2D', header=header, id='hazard-1',
        results=[f.new('vision_msgs/msg/ObjectHypothesisWithPose',
                       hypothesis=f.new('vision_msgs/msg/ObjectHypothesis',
                                        class_id='anomaly', score=0.875))],
        bbox=f.new('vision_msgs/msg/BoundingBox2D',
                   center=f.new('vision_msgs/msg/Pose2D',
                                position=f.new('vision_msgs/msg/Point2D', x=12.5, y=7.0),
                                theta=0.0),
                   size_x=20.0, size_y=10.0))
    return f.new('vision_msgs/msg/Detection2DArray', header=header, detections=[det])


@pytest.mark.parametrize('storage', STORAGES)
@pytest.mark.parametrize('distro', DISTROS)
def test_write_and_read_back_every_output_type(tmp_path, storage, distro):
    path = tmp_path / 'out'
    frames = _frames()
    with BagWriter(path, storage=storage, distro=distro) as bag:
        f = bag.factory
        bag.add_topic('/cam/image', 'sensor_msgs/msg/Image')
        bag.add_topic('/cam/image/compressed', 'sensor_msgs/msg/CompressedImage')
        bag.add_topic('/score', 'vision_msgs/msg/Classification')
        bag.add_topic('/instances', 'vision_msgs/msg/Detection2DArray')
        bag.add_topic('/markers', 'visualization_msgs/msg/MarkerArray')
        bag.add_topic('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray')
        for i, rgb in enumerate(frames):
            header = f.header(1_000_000_000 + i * 50_000_000, 'camera_optical_link')
            bag.write('/cam/image', numpy_to_image(rgb, 'rgb8', header, f))
            bag.write('/cam/image/compressed',
                      numpy_to_compressed(rgb, header, f, encoding='rgb8', codec='png'))
            bag.write('/score', f.new(
                'vision_msgs/msg/Classification', header=header,
                results=[f.new('vision_msgs/msg/ObjectHypothesis', class_id='anomaly',
                               score=i / 8)]))
            bag.write('/instances', _detections(f, header))
            bag.write('/markers', f.new('visualization_msgs/msg/MarkerArray', markers=[
                f.new('visualization_msgs/msg/Marker', header=header, text=f'score {i}')]),
                log_time_ns=1_000_000_000 + i * 50_000_000)
            bag.write('/diagnostics', f.new(
                'diagnostic_msgs/msg/DiagnosticArray', header=header, status=[
                    f.new('diagnostic_msgs/msg/DiagnosticStatus', name='frame', level=0,
                          values=[f.new('diagnostic_msgs/msg/KeyValue', key='fps',
                                        value='30')])]))
    assert path.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]

    with BagReader(path) as bag:
        assert bag.storage == storage
        assert {t.name: (t.msgtype, t.count) for t in bag.topics.values()} == {
            '/cam/image': ('sensor_msgs/msg/Image', 4),
            '/cam/image/compressed': ('sensor_msgs/msg/CompressedImage', 4),
            '/score': ('vision_msgs/msg/Classification', 4),
            '/instances': ('vision_msgs/msg/Detection2DArray', 4),
            '/markers': ('visualization_msgs/msg/MarkerArray', 4),
            '/diagnostics': ('diagnostic_msgs/msg/DiagnosticArray', 4),
        }
        assert sorted(bag.image_topics) == ['/cam/image', '/cam/image/compressed']
        for topic in bag.image_topics:
            read = list(bag.read_images(topic))
            assert [fr.stamp_ns for fr in read] == [1_000_000_000 + i * 50_000_000
                                                    for i in range(4)]
            assert all(fr.frame_id == 'camera_optical_link' for fr in read)
            for fr, rgb in zip(read, frames):
                np.testing.assert_array_equal(fr.image, rgb)
        scores = [m.results[0].score for _, _, m in bag.messages(['/score'])]
        assert scores == [0.0, 0.125, 0.25, 0.375]
        _, log_time, arr = next(bag.messages(['/instances']))
        det = arr.detections[0]
        assert log_time == 1_000_000_000
        assert (det.id, det.results[0].hypothesis.class_id) == ('hazard-1', 'anomaly')
        assert det.results[0].hypothesis.score == 0.875
        assert (det.bbox.center.position.x, det.bbox.size_x) == (12.5, 20.0)
        assert det.results[0].pose.pose.orientation.w == 1.0
        _, _, markers = next(bag.messages(['/markers']))
        assert markers.markers[0].text == 'score 0'
        _, _, diag = next(bag.messages(['/diagnostics']))
        assert diag.status[0].values[0].value == '30'


@pytest.mark.parametrize('storage', STORAGES)
def test_single_storage_file_opens_too(tmp_path, storage):
    write_image_bag(tmp_path / 'bag', _frames(2), storage=storage)
    (db,) = [p for p in (tmp_path / 'bag').iterdir() if p.suffix in ('.mcap', '.db3')]
    with BagReader(db) as bag:
        assert len(list(bag.read_images())) == 2


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / 'bag'
    with pytest.raises(RuntimeError, match='camera died'):
        with BagWriter(path) as bag:
            bag.add_topic('/img', 'sensor_msgs/msg/Image')
            bag.write('/img', numpy_to_image(_frames(1)[0], 'rgb8',
                                             bag.factory.header(1, 'c'), bag.factory))
            raise RuntimeError('camera died')
    assert list(tmp_path.iterdir()) == []


def test_existing_bag_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / 'bag'
    write_image_bag(path, _frames(2))
    with pytest.raises(OutputExistsError, match='already exists'):
        write_image_bag(path, _frames(3))
    with BagWriter(path, overwrite=True) as bag:
        bag.add_topic('/other', 'vision_msgs/msg/Classification')
    with BagReader(path) as bag:
        assert list(bag.topics) == ['/other']


def test_missing_topic_lists_image_topics(tmp_path):
    write_image_bag(tmp_path / 'bag', _frames(2), topic='/front/image_raw')
    with BagReader(tmp_path / 'bag') as bag:
        with pytest.raises(TopicNotFoundError) as err:
            list(bag.read_images('/robomaster/camera/image_color'))
    message = str(err.value)
    assert "no topic '/robomaster/camera/image_color'" in message
    assert 'Image topics in it: /front/image_raw' in message


def test_bag_without_image_topic_lists_its_topics(tmp_path):
    with BagWriter(tmp_path / 'bag') as bag:
        bag.add_topic('/score', 'vision_msgs/msg/Classification')
    with BagReader(tmp_path / 'bag') as bag:
        with pytest.raises(BagError, match=r'no Image or CompressedImage topic.*/score '
                                           r'\(vision_msgs/msg/Classification\)'):
            bag.find_image_topic()


def _copy_bag(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    (db,) = [p for p in dst.iterdir() if p.suffix in ('.mcap', '.db3')]
    return db


@pytest.mark.parametrize('storage', STORAGES)
def test_truncated_bag_names_the_file(tmp_path, storage):
    write_image_bag(tmp_path / 'good', _frames(6, 64, 64), storage=storage)
    db = _copy_bag(tmp_path / 'good', tmp_path / 'bad')
    data = db.read_bytes()
    db.write_bytes(data[:len(data) // 2])
    with pytest.raises(BagError) as err:
        with BagReader(tmp_path / 'bad') as bag:
            list(bag.read_images())
    assert str(tmp_path / 'bad') in str(err.value)
    assert 'truncated' in str(err.value) or 'corrupt' in str(err.value)


@pytest.mark.parametrize('storage', STORAGES)
def test_garbage_bag_names_the_file(tmp_path, storage):
    write_image_bag(tmp_path / 'good', _frames(6, 64, 64), storage=storage)
    db = _copy_bag(tmp_path / 'good', tmp_path / 'bad')
    db.write_bytes(os.urandom(db.stat().st_size))
    with pytest.raises(BagError, match='bad'):
        with BagReader(tmp_path / 'bad') as bag:
            list(bag.read_images())


def test_mcap_with_damaged_records_is_reported_not_silently_empty(tmp_path):
    write_image_bag(tmp_path / 'good', _frames(6, 64, 64), storage='mcap')
    db = _copy_bag(tmp_path / 'good', tmp_path / 'bad')
    data = bytearray(db.read_bytes())
    data[200:1200] = bytes(1000)
    db.write_bytes(bytes(data))
    with pytest.raises(BagError, match='truncated or corrupt'):
        with BagReader(tmp_path / 'bad') as bag:
            list(bag.read_images())


def test_missing_bag_and_not_a_bag(tmp_path):
    with pytest.raises(BagError, match='does not exist'):
        BagReader(tmp_path / 'nope').open()
    (tmp_path / 'empty_dir').mkdir()
    with pytest.raises(BagError, match='empty_dir'):
        BagReader(tmp_path / 'empty_dir').open()


def test_malformed_image_inside_bag_is_skipped_and_counted(tmp_path):
    path = tmp_path / 'bag'
    with BagWriter(path) as bag:
        f = bag.factory
        bag.add_topic('/img', 'sensor_msgs/msg/Image')
        for i in range(3):
            header = f.header(10 + i, 'c')
            if i == 1:
                bad = f.new('sensor_msgs/msg/Image', header=header, height=4, width=4,
                            encoding='rgb8', step=12, data=np.zeros(7, np.uint8))
                bag.write('/img', bad)
            else:
                bag.write('/img', numpy_to_image(_frames(1, 4, 4)[0], 'rgb8', header, f))
    with BagReader(path) as bag:
        frames = list(bag.read_images('/img', on_error='skip'))
        assert [fr.index for fr in frames] == [0, 2]
        assert len(bag.skipped) == 1 and bag.skipped[0].index == 1
        assert '7 bytes' in bag.skipped[0].reason
    with BagReader(path) as bag:
        with pytest.raises(Exception, match='/img message 1'):
            list(bag.read_images('/img'))


def test_writer_rejects_unknown_types_and_storages(tmp_path):
    with pytest.raises(BagError, match="Unknown bag storage 'rosbag1'"):
        BagWriter(tmp_path / 'b', storage='rosbag1')
    with BagWriter(tmp_path / 'b') as bag:
        with pytest.raises(BagError, match='Unknown message type'):
            bag.add_topic('/x', 'my_msgs/msg/Thing')


def test_reader_registers_types_defined_only_in_the_bag(tmp_path):
    """A bag with a custom type (definition stored in the mcap) still reads."""
    from rosbags.rosbag2 import StoragePlugin
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import get_types_from_msg
    from rosbags.typesys import get_typestore
    from rosbags.typesys import Stores

    store = get_typestore(Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg('float32 hazard\nstring where', 'robot_msgs/msg/Alert'))
    msg = store.types['robot_msgs/msg/Alert'](hazard=0.5, where='corridor')
    with Writer(tmp_path / 'b', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/alert', 'robot_msgs/msg/Alert', typestore=store)
        writer.write(conn, 5, store.serialize_cdr(msg, 'robot_msgs/msg/Alert'))
    with BagReader(Path(tmp_path / 'b')) as bag:
        (_, _, back), = list(bag.messages(['/alert']))
        assert (back.hazard, back.where) == (0.5, 'corridor')


@pytest.mark.parametrize('storage', STORAGES)
def test_compressed_bag_with_custom_data_reads_back(tmp_path, storage):
    frames = _frames(3, 32, 32)
    with BagWriter(tmp_path / 'bag', storage=storage, compression='zstd',
                   custom_data={'origin': 'test'}) as bag:
        bag.add_topic('/img', 'sensor_msgs/msg/Image')
        for i, rgb in enumerate(frames):
            bag.write('/img', numpy_to_image(rgb, 'rgb8', bag.factory.header(i + 1, 'c'),
                                             bag.factory))
    with BagReader(tmp_path / 'bag') as bag:
        assert bag.custom_data == {'origin': 'test'}
        for frame, rgb in zip(bag.read_images('/img'), frames):
            np.testing.assert_array_equal(frame.image, rgb)
    with pytest.raises(BagError, match="Unknown bag compression 'lz9'"):
        BagWriter(tmp_path / 'other', compression='lz9')
